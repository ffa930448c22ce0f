#include "store/generation_row.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/stats.h"
#include "store/sqlite_stmt.h"

namespace evomerge::store_detail {

void summarise_fitness(const std::vector<double>& fitness, GenerationStats& g) {
  g.n_ok = 0;
  for (double f : fitness) g.n_ok += std::isfinite(f) ? 1 : 0;
  g.best = quantile(fitness, 1.0);
  g.q3 = quantile(fitness, 0.75);
  g.median = quantile(fitness, 0.5);
  g.q1 = quantile(fitness, 0.25);
  g.worst = quantile(fitness, 0.0);
}

void stats_from_state_blob(const std::vector<uint8_t>& blob, GenerationStats& g) {
  // Malformed CBOR decodes to a discarded value (no exception).
  const auto j = nlohmann::json::from_cbor(blob, true, false);
  if (!j.is_object()) return;
  if (j.contains("last") && j["last"].is_object()) {
    const auto& last = j["last"];
    if (g.restart < 0 && last.contains("restart") && last["restart"].is_number_integer())
      g.restart = last["restart"].get<int>();
    if (std::isnan(g.sigma) && last.contains("sigma") && last["sigma"].is_number())
      g.sigma = last["sigma"].get<double>();
  }
  if (g.evaluations < 0 && j.contains("fevals") && j["fevals"].is_number_integer())
    g.evaluations = j["fevals"].get<int64_t>();
}

void insert_generation(sqlite3* db, const std::filesystem::path& where, const GenerationStats& g) {
  double best_so_far = g.best;
  {
    Stmt prior(db, "SELECT max(best) FROM generation WHERE phase = ? AND generation < ?", where);
    prior.bind(1, g.phase).bind(2, g.generation);
    if (prior.step() && !prior.is_null(0))
      best_so_far = std::isnan(best_so_far) ? prior.f64(0) : std::max(best_so_far, prior.f64(0));
  }
  Stmt ins(
      db,
      "INSERT INTO generation (phase, generation, restart, lambda, n_ok, best, q1, median, q3, "
      "worst, best_so_far, sigma, evaluations, wall_seconds, created) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      where);
  ins.bind(1, g.phase).bind(2, g.generation);
  ins.bind(3, static_cast<int64_t>(std::max(g.restart, 0))).bind(4, static_cast<int64_t>(g.lambda));
  ins.bind(5, static_cast<int64_t>(g.n_ok));
  const double reals[] = {g.best, g.q1, g.median, g.q3, g.worst, best_so_far, g.sigma};
  for (int k = 0; k < 7; ++k) {
    if (std::isfinite(reals[k]))
      ins.bind(6 + k, reals[k]);
    else
      ins.bind_null(6 + k);
  }
  ins.bind(13, std::max<int64_t>(g.evaluations, 0));
  if (std::isfinite(g.wall_seconds))
    ins.bind(14, g.wall_seconds);
  else
    ins.bind_null(14);
  ins.bind(15, g.created);
  ins.step();
}

}  // namespace evomerge::store_detail
