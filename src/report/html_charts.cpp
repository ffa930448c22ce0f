#include "report/html_charts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report/svg.h"

namespace evomerge::report {

namespace {

struct Frame {
  double left, top, width, height;
  double right() const { return left + width; }
  double bottom() const { return top + height; }
};

std::string svg_open(const std::string& chart, double w, double h, const std::string& title) {
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" "
      "role=\"img\" "
      "xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>\n",
      escape(chart), px(w), px(h), px(w), px(h), escape(title));
}

// Horizontal grid lines with tick labels on the left (or right) of the frame.
std::string y_ticks(const Axis& a, const Frame& f, bool right) {
  std::string s;
  for (double t : a.ticks) {
    const double y = a.map(t, f.bottom(), f.top);
    if (!right)
      s += fmt::format("<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", px(f.left),
                       px(y), px(f.right()), px(y));
    s += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"{}\">{}</text>\n",
                     px(right ? f.right() + 6 : f.left - 6), px(y + 4), right ? "start" : "end",
                     escape(a.format(t)));
  }
  const double cx = right ? f.right() + 44 : f.left - 44, cy = f.top + f.height / 2;
  s += fmt::format(
      "<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 "
      "{} {})\">{}</text>\n",
      px(cx), px(cy), px(cx), px(cy), escape(a.label));
  return s;
}

std::string x_ticks(const Axis& a, const Frame& f) {
  std::string s;
  for (double t : a.ticks) {
    const double x = a.map(t, f.left, f.right());
    s += fmt::format("<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", px(x),
                     px(f.top), px(x), px(f.bottom()));
    s += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     px(x), px(f.bottom() + 16), escape(a.format(t)));
  }
  s +=
      fmt::format("<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                  px(f.left + f.width / 2), px(f.bottom() + 34), escape(a.label));
  return s;
}

// Dark fills get white text (relative luminance of an "#rrggbb" colour below one half).
bool is_dark(const std::string& hex) {
  if (hex.size() != 7 || hex[0] != '#') return false;
  const int v = std::stoi(hex.substr(1), nullptr, 16);
  const double lum = 0.2126 * ((v >> 16) & 255) + 0.7152 * ((v >> 8) & 255) + 0.0722 * (v & 255);
  return lum < 128;
}

}  // namespace

std::string fitness_svg(const FitnessPanel& p) {
  const Frame f{64, 16, 560, 220};
  std::string s = svg_open("fitness-" + p.phase, 800, 300, p.title);
  s += x_ticks(p.x, f) + y_ticks(p.y, f, false) + y_ticks(p.y2, f, true);
  if (!p.band.empty()) {  // the population's interquartile range
    std::string pts;
    for (const auto& [x, q] : p.band)
      pts +=
          px(p.x.map(x, f.left, f.right())) + "," + px(p.y.map(q.second, f.bottom(), f.top)) + " ";
    for (auto it = p.band.rbegin(); it != p.band.rend(); ++it)
      pts += px(p.x.map(it->first, f.left, f.right())) + "," +
             px(p.y.map(it->second.first, f.bottom(), f.top)) + " ";
    s += fmt::format(
        "<polygon class=\"band\" points=\"{}\" fill=\"#E69F00\" fill-opacity=\"0.18\" "
        "stroke=\"none\"/>\n",
        pts);
  }
  for (int64_t g : p.restarts) {
    const double x = p.x.map(static_cast<double>(g), f.left, f.right());
    s += fmt::format(
        "<line class=\"restart\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" "
        "stroke-dasharray=\"2 3\"/>"
        "<text class=\"tick\" x=\"{}\" y=\"{}\">restart</text>\n",
        px(x), px(f.top), px(x), px(f.bottom()), px(x + 3), px(f.top + 10));
  }
  for (const auto& series : p.series) {
    const Axis& y = series.second_axis ? p.y2 : p.y;
    std::string pts, dots;
    for (const auto& pt : series.points) {
      const double cx = p.x.map(pt.x, f.left, f.right()), cy = y.map(pt.y, f.bottom(), f.top);
      pts += px(cx) + "," + px(cy) + " ";
      dots += fmt::format(
          "<circle class=\"pt\" data-series=\"{}\" cx=\"{}\" cy=\"{}\" r=\"2.5\" "
          "fill=\"{}\"><title>{} gen {}: {:.4f}</title></circle>",
          escape(series.name), px(cx), px(cy), series.colour, escape(series.name), pt.x, pt.y);
    }
    s += fmt::format(
        "<polyline class=\"series\" data-series=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" "
        "stroke-width=\"{}\"{}/>\n{}\n",
        escape(series.name), pts, series.colour, series.second_axis ? 1.2 : 2,
        series.dashed ? " stroke-dasharray=\"5 3\"" : "", dots);
  }
  // Legend.
  double lx = f.left;
  for (const auto& series : p.series) {
    s += fmt::format(
        "<line x1=\"{}\" y1=\"290\" x2=\"{}\" y2=\"290\" stroke=\"{}\" stroke-width=\"2\"{}/><text "
        "class=\"legend\" x=\"{}\" y=\"294\">{}{}</text>",
        px(lx), px(lx + 18), series.colour, series.dashed ? " stroke-dasharray=\"5 3\"" : "",
        px(lx + 22), escape(series.name), series.second_axis ? " (right axis)" : "");
    lx += series.second_axis ? 150 : 115;
  }
  s += fmt::format(
      "<rect x=\"{}\" y=\"284\" width=\"18\" height=\"10\" fill=\"#E69F00\" "
      "fill-opacity=\"0.18\"/><text class=\"legend\" x=\"{}\" y=\"294\">middle half of the "
      "population</text>",
      px(lx), px(lx + 22));
  return s + "</svg>\n";
}

std::string heatmap_svg(const Heatmap& h) {
  const double cell_w = std::clamp(480.0 / std::max<size_t>(1, h.columns.size()), 40.0, 110.0),
               cell_h = 30, left = 180, top = 70;
  const double w = std::max(760.0, left + cell_w * static_cast<double>(h.columns.size()) + 40),
               height = top + cell_h * static_cast<double>(h.rows.size()) + 50;
  std::string s = svg_open("recipe-heatmap", w, height, "Best PS recipe: " + h.source);
  for (size_t c = 0; c < h.columns.size(); ++c) {
    const double x = left + cell_w * (static_cast<double>(c) + 0.5);
    s += fmt::format(
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"start\" transform=\"rotate(-30 {} "
        "{})\">{}</text>\n",
        px(x), px(top - 8), px(x), px(top - 8), escape(h.columns[c]));
  }
  for (size_t r = 0; r < h.rows.size(); ++r) {
    const auto& row = h.rows[r];
    const double y = top + cell_h * static_cast<double>(r);
    s += fmt::format(
        "<rect x=\"8\" y=\"{}\" width=\"10\" height=\"{}\" fill=\"{}\"/><text class=\"tick\" "
        "x=\"24\" y=\"{}\">{} {}</text>\n",
        px(y + 6), px(cell_h - 12), row.model_colour, px(y + cell_h / 2 + 4), escape(row.model),
        escape(row.param));
    for (size_t c = 0; c < row.values.size() && c < h.columns.size(); ++c) {
      const double x = left + cell_w * static_cast<double>(c);
      const bool dark = c < row.fills.size() && is_dark(row.fills[c]);
      s += fmt::format(
          "<rect class=\"pt\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
          "stroke=\"#fff\"><title>{} {} {}: {:.4f}</title></rect>"
          "<text class=\"cell\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" "
          "fill=\"{}\">{:.2f}</text>\n",
          px(x), px(y), px(cell_w), px(cell_h), c < row.fills.size() ? row.fills[c] : "#bbb",
          escape(row.model), escape(row.param), escape(h.columns[c]), row.values[c],
          px(x + cell_w / 2), px(y + cell_h / 2 + 4), dark ? "#fff" : "#000", row.values[c]);
    }
  }
  std::string ranges;
  for (const auto& [param, r] : h.ranges)
    ranges += fmt::format("{}{} in [{}, {}]", ranges.empty() ? "" : ", ", param, r.first, r.second);
  s += fmt::format(
      "<text class=\"legend\" x=\"8\" y=\"{}\">colour: the value within its search range ({}): "
      "light = low, dark = high</text>\n",
      px(height - 16), escape(ranges));
  return s + "</svg>\n";
}

std::string path_svg(const PathDiagram& d) {
  // Two rows of boxes: model A's plain path above, the evolved path below (wrapped every 28 hops),
  // each box coloured by its source model with the layer number inside and the input scale as a
  // bar under it.
  constexpr size_t kPerRow = 28;
  const double box = 26, gap = 4, left = 150;
  const size_t n = std::max<size_t>(d.hops.size(), static_cast<size_t>(d.plain_layers));
  const double per_row = static_cast<double>(std::clamp<size_t>(n, 1, kPerRow));
  // Wide enough for the legend line (model keys and the scale note) also when the path is short.
  const double w = std::max(720.0, left + per_row * (box + gap) + 20);
  const size_t rows = std::max<size_t>(1, (d.hops.size() + kPerRow - 1) / kPerRow);
  const double plain_top = 40, path_top = 110, row_h = 80;
  const double height = path_top + row_h * static_cast<double>(rows) + 50;
  std::string s = svg_open("dfs-path", w, height, "DFS layer path: " + d.source);
  const std::string a_colour = d.models.empty() ? "#666666" : d.models[0].colour;
  const std::string a_name = d.models.empty() ? "model A" : d.models[0].name;
  s += fmt::format("<text class=\"tick\" x=\"8\" y=\"{}\">{} (plain)</text>\n", px(plain_top + 18),
                   escape(a_name));
  for (int l = 0; l < d.plain_layers && l < static_cast<int>(kPerRow); ++l) {
    const double x = left + l * (box + gap);
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"0.35\"/>"
        "<text class=\"cell\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        px(x), px(plain_top), px(box), px(box), a_colour, px(x + box / 2), px(plain_top + 17), l);
  }
  s += fmt::format("<text class=\"tick\" x=\"8\" y=\"{}\">evolved path ({} hops)</text>\n",
                   px(path_top + 18), d.hops.size());
  const double bar_max = 24;
  for (size_t k = 0; k < d.hops.size(); ++k) {
    const auto& h = d.hops[k];
    const double x = left + static_cast<double>(k % kPerRow) * (box + gap);
    const double y = path_top + row_h * static_cast<double>(k / kPerRow);
    const bool known = h.model >= 0 && h.model < static_cast<int>(d.models.size());
    const std::string model = known ? d.models[h.model].name : fmt::format("model {}", h.model);
    const double bar = std::clamp(d.scale_axis.map(h.scale, 0, bar_max), 0.0, bar_max);
    s += fmt::format(
        "<g class=\"pt\" data-model=\"{}\" data-layer=\"{}\" data-scale=\"{:.4f}\"><title>hop {}: "
        "{} "
        "layer {}, input scale {:.3f}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
        "fill=\"{}\"/><text class=\"cell\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" "
        "fill=\"#fff\">{}</text><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
        "fill=\"#444\"/></g>\n",
        h.model, h.layer, h.scale, k, escape(model), h.layer, h.scale, px(x), px(y), px(box),
        px(box), h.colour, px(x + box / 2), px(y + 17), h.layer, px(x + 4),
        px(y + box + 2 + bar_max - bar), px(box - 8), px(bar));
  }
  double lx = 8;
  for (const auto& m : d.models) {
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text class=\"legend\" "
        "x=\"{}\" y=\"{}\">{}</text>",
        px(lx), px(height - 28), m.colour, px(lx + 16), px(height - 18), escape(m.name));
    lx += 30 + 7.0 * static_cast<double>(m.name.size());
  }
  s += fmt::format(
      "<text class=\"legend\" x=\"{}\" y=\"{}\">grey bar under a hop: its input scale (full "
      "height = {})</text>\n",
      px(lx + 10), px(height - 18), escape(d.scale_axis.format(d.scale_axis.hi)));
  return s + "</svg>\n";
}

std::string final_svg(const FinalChart& c) {
  // The labels' column fits the longest label (11 px text, about 7 px per character in bold).
  size_t longest = 0;
  for (const auto& b : c.bars) longest = std::max(longest, b.label.size());
  const double left = std::max(200.0, 16 + 7.0 * static_cast<double>(longest));
  const double top = 10, bar_h = 22, gap = 8, width = 400;
  const double height = top + (bar_h + gap) * static_cast<double>(c.bars.size()) + 50;
  const Frame f{left, top, width, height - top - 50};
  std::string s =
      svg_open("final", left + width + 80, height, "Final comparison on the " + c.split + " split");
  s += x_ticks(c.x, f);
  for (size_t i = 0; i < c.bars.size(); ++i) {
    const auto& b = c.bars[i];
    const double y = top + (bar_h + gap) * static_cast<double>(i);
    const double x0 = c.x.map(0, f.left, f.right()), x1 = c.x.map(b.score, f.left, f.right());
    const double lo = c.x.map(b.lo, f.left, f.right()), hi = c.x.map(b.hi, f.left, f.right());
    s += fmt::format("<text class=\"tick{}\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                     b.winner ? " winner" : "", px(left - 8), px(y + bar_h / 2 + 4),
                     escape(b.label));  // the winner's label says so; bold marks it too
    s += fmt::format(
        "<rect class=\"pt\" data-kind=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
        "fill=\"{}\"><title>{}: {:.4f} [{:.4f}, {:.4f}]</title></rect>",
        final_kind_name(b.kind), px(x0), px(y), px(std::max(0.0, x1 - x0)), px(bar_h), b.colour,
        escape(b.label), b.score, b.lo, b.hi);
    // The 95% interval as a whisker with end caps, the score written after it.
    const double mid = y + bar_h / 2;
    s += fmt::format(
        "<path d=\"M{0},{2}V{3}M{0},{1}H{4}M{4},{2}V{3}\" stroke=\"#000\" stroke-width=\"1.5\" "
        "fill=\"none\"/><text class=\"cell\" x=\"{5}\" y=\"{6}\">{7:.3f}</text>\n",
        px(lo), px(mid), px(mid - 5), px(mid + 5), px(hi), px(std::max(hi, x1) + 6), px(mid + 4),
        b.score);
  }
  return s + "</svg>\n";
}

std::string paired_svg(const FinalChart& c) {
  if (!c.paired) return "";
  const auto& p = *c.paired;
  const Frame f{40, 10, 560, 30};
  std::string s = svg_open("paired", 680, 90, "Paired difference, winner minus best parent");
  s += x_ticks(c.diff_axis, f);
  const double zero = c.diff_axis.map(0, f.left, f.right());
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/>", px(zero),
                   px(f.top), px(zero), px(f.bottom()));
  const double lo = c.diff_axis.map(p.lo, f.left, f.right());
  const double hi = c.diff_axis.map(p.hi, f.left, f.right());
  const double x = c.diff_axis.map(p.diff, f.left, f.right()), y = f.top + f.height / 2;
  s += fmt::format(
      "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#D55E00\" stroke-width=\"3\"/>"
      "<circle class=\"pt\" cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"#D55E00\"><title>{:+.4f} [{:+.4f}, "
      "{:+.4f}]</title></circle>\n",
      px(lo), px(y), px(hi), px(y), px(x), px(y), p.diff, p.lo, p.hi);
  return s + "</svg>\n";
}

}  // namespace evomerge::report
