#include "dippas/dip/settings_hash.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "dippas/dip/config.h"
#include "dippas/util/fnv.h"

namespace dippas {
std::string HashFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open the fingerprint");
  uint64_t h = kFnvOffset;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = Fnv1a(h, buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error(path + ": read error");
  return FnvHex(h);
}

std::string ResultSettingsJson(const ResultSettings& s) {
  DipOptions method = s.dip;  // when checkpoints are saved changes no output bit
  method.checkpoint_every = DipOptions{}.checkpoint_every;
  method.checkpoint_seconds = DipOptions{}.checkpoint_seconds;
  method.concurrent_tiles = DipOptions{}.concurrent_tiles;
  nlohmann::json config = DipOptionsToJson(method);
  // Keys added since, at the value that gives what the builds before them gave, stay out: a run
  // made before a key existed keeps its hash (its batch item is not redone, its checkpoints
  // resume). Every key added later joins this list with its neutral value.
  for (const auto& [key, neutral] : {std::pair<const char*, double>{"sigmoid_floor", 0.0},
                                     std::pair<const char*, double>{"select_residual", 0.0}}) {
    if (config.contains(key) && config[key].get<double>() == neutral) config.erase(key);
  }
  const nlohmann::json j = {
      {"method", s.method},
      {"mode", s.mode},
      {"crop", s.crop},
      {"config", config},
      {"prnu", s.prnu.empty() ? nlohmann::json(nullptr) : nlohmann::json(HashFileBytes(s.prnu))},
      {"mat_var", s.prnu.empty() ? "" : s.mat_var}};
  return j.dump();  // nlohmann's object keys are sorted: canonical
}

std::string SettingsHash(const ResultSettings& s) {
  const std::string text = ResultSettingsJson(s);
  return "fnv1a64:" + FnvHex(Fnv1a(text));
}

}  // namespace dippas
