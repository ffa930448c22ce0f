#!/usr/bin/env python3
"""The DFS budget curve (docs/science.md) as an SVG, from the run stores of the curve's runs.

Usage: tools/dfs_budget_plot.py OUT.svg RUN_DIR...   (each RUN_DIR a finished `evomerge evolve`
folder of a DFS-only run named like run_b<budget>_s<seed>). Per run it reads from run.db the
test-split score of the evolved DFS row, of model A (the first parent row, the DFS start) and the
number of DFS candidates evaluated; it prints them as a Markdown table and draws test accuracy
against evaluations (log scale): one dot per seed, the mean per budget, model A as a dashed line.
Standard library only (sqlite3), so it runs wherever python3 does.
"""
import math
import re
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path


def read_run(run_dir: Path):
    db = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True)
    rows = db.execute("SELECT label, score FROM final_result WHERE split = 'test'").fetchall()
    evals = db.execute("SELECT count(*) FROM candidate WHERE phase = 'dfs'").fetchone()[0]
    db.close()
    dfs = [s for label, s in rows if label.startswith("evolved DFS")]
    parents = [s for label, s in rows if label.startswith("parent: ")]
    if not dfs or not parents:
        sys.exit(f"{run_dir}: no finished final table (evolved DFS and parent rows) in run.db")
    return dfs[0], parents[0], evals


def svg(points, model_a, out: Path):
    w, h, left, right, top, bottom = 560, 360, 60, 20, 30, 50
    budgets = sorted(points)
    xs = [math.log10(b) for b in budgets]
    x0, x1 = math.floor(min(xs) * 2) / 2 - 0.1, math.ceil(max(xs) * 2) / 2 + 0.1
    ys = [s for b in budgets for s, _ in points[b]] + [model_a]
    y0, y1 = math.floor(min(ys) * 20) / 20, math.ceil(max(ys) * 20) / 20
    px = lambda x: left + (x - x0) / (x1 - x0) * (w - left - right)
    py = lambda y: h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)
    e = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w / 2}" y="18" text-anchor="middle">DFS alone over the PS winner: test accuracy '
         f'vs budget</text>']
    for k in range(int(round((y1 - y0) / 0.05)) + 1):  # y grid every 0.05
        y = y0 + 0.05 * k
        e.append(f'<line x1="{left}" x2="{w - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                 f'stroke="#ddd"/><text x="{left - 6}" y="{py(y) + 4:.1f}" '
                 f'text-anchor="end">{y:.2f}</text>')
    for b in budgets:
        x = px(math.log10(b))
        e.append(f'<text x="{x:.1f}" y="{h - bottom + 16}" text-anchor="middle">{b}</text>')
    e.append(f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">DFS candidate evaluations '
             f'(log scale)</text>')
    e.append(f'<line x1="{left}" x2="{w - right}" y1="{py(model_a):.1f}" y2="{py(model_a):.1f}" '
             f'stroke="#c33" stroke-dasharray="5,4"/><text x="{w - right}" '
             f'y="{py(model_a) - 5:.1f}" text-anchor="end" fill="#c33">model A (the DFS start) '
             f'{model_a:.3f}</text>')
    means = []
    for b in budgets:
        x = px(math.log10(b))
        for s, seed in points[b]:
            e.append(f'<circle cx="{x:.1f}" cy="{py(s):.1f}" r="4" fill="#36c" fill-opacity="0.6">'
                     f'<title>seed {seed}: {s:.4f}</title></circle>')
        means.append((x, py(sum(s for s, _ in points[b]) / len(points[b]))))
    e.append('<polyline fill="none" stroke="#036" stroke-width="2" points="' +
             " ".join(f"{x:.1f},{y:.1f}" for x, y in means) + '"/>')
    e.append(f'<text x="{w - right - 4}" y="{h - bottom - 8}" text-anchor="end" fill="#036">'
             f'line: mean over seeds; dots: one seed each</text></svg>')
    out.write_text("\n".join(e) + "\n")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    points = defaultdict(list)
    model_a = None
    print("| budget | seed | evaluations run | DFS winner test | model A test |\n|---|---|---|---|---|")
    for arg in sys.argv[2:]:
        m = re.search(r"run_b(\d+)_s(\d+)", arg)
        if not m:
            sys.exit(f"{arg}: expected a folder named run_b<budget>_s<seed>")
        dfs, a, evals = read_run(Path(arg))
        model_a = a
        points[int(m.group(1))].append((dfs, int(m.group(2))))
        print(f"| {m.group(1)} | {m.group(2)} | {evals} | {dfs:.4f} | {a:.4f} |")
    svg(points, model_a, out)


if __name__ == "__main__":
    main()
