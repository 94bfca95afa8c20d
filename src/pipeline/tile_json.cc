#include "dippas/pipeline/tile_json.h"

#include <cmath>

namespace dippas {
namespace {

nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// The loop's attempts (restarts); [] for a tile reused from a work folder of an older version.
nlohmann::json AttemptsJson(const TileOutcome& t) {
  nlohmann::json a = nlohmann::json::array();
  for (size_t k = 0; k < t.attempts.size(); ++k) {
    const DipAttempt& x = t.attempts[k];
    a.push_back({{"seed", x.seed},
                 {"iterations", x.iterations},
                 {"stop_reason", x.stop_reason},
                 {"pool_size", x.pool_size},
                 {"best_candidate_psnr", Num(x.best_psnr)},
                 {"kept", static_cast<int64_t>(k) == t.kept}});
  }
  return a;
}

}  // namespace

nlohmann::json TileJson(const TileOutcome& t) {
  return {{"index", t.tile.index},
          {"box", {t.tile.core.y, t.tile.core.x, t.tile.core.h, t.tile.core.w}},
          {"context", {t.tile.context.y, t.tile.context.x, t.tile.context.h, t.tile.context.w}},
          {"iterations", t.iterations},
          {"stop_reason", t.stop_reason},
          {"psnr", Num(t.psnr)},
          {"pool_size", t.pool_size},
          {"gamma", Num(t.gamma)},
          {"best_candidate_psnr", Num(t.best_candidate_psnr)},
          {"fallback_no_pool", t.fallback},
          {"attempts", AttemptsJson(t)},
          {"seconds", t.seconds},
          {"reused", t.reused}};
}

TileOutcome TileFromJson(const nlohmann::json& j, const Tile& tile) {
  TileOutcome t;
  t.tile = tile;
  t.iterations = j.at("iterations").get<int64_t>();
  t.stop_reason = j.at("stop_reason").get<std::string>();
  t.psnr = j.at("psnr").is_number() ? j.at("psnr").get<double>() : NAN;
  t.pool_size = j.at("pool_size").get<int64_t>();
  t.gamma = j.at("gamma").is_number() ? j.at("gamma").get<double>() : NAN;
  t.best_candidate_psnr = j.at("best_candidate_psnr").is_number() ? j.at("best_candidate_psnr").get<double>() : NAN;
  t.fallback = j.at("fallback_no_pool").get<bool>();
  if (j.contains("attempts") && j.at("attempts").is_array()) {
    const auto& a = j.at("attempts");
    for (size_t k = 0; k < a.size(); ++k) {
      DipAttempt x;
      x.seed = a[k].at("seed").get<int64_t>();
      x.iterations = a[k].at("iterations").get<int64_t>();
      x.stop_reason = a[k].at("stop_reason").get<std::string>();
      x.pool_size = a[k].at("pool_size").get<int64_t>();
      x.best_psnr = a[k].at("best_candidate_psnr").is_number()
                        ? a[k].at("best_candidate_psnr").get<double>()
                        : NAN;
      if (a[k].value("kept", false)) t.kept = static_cast<int64_t>(k);
      t.attempts.push_back(x);
    }
  }
  t.seconds = j.at("seconds").get<double>();
  return t;
}

}  // namespace dippas
