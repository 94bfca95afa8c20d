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
  const nlohmann::json j = {
      {"method", s.method},
      {"mode", s.mode},
      {"crop", s.crop},
      {"config", DipOptionsToJson(method)},
      {"prnu", s.prnu.empty() ? nlohmann::json(nullptr) : nlohmann::json(HashFileBytes(s.prnu))},
      {"mat_var", s.prnu.empty() ? "" : s.mat_var}};
  return j.dump();  // nlohmann's object keys are sorted: canonical
}

std::string SettingsHash(const ResultSettings& s) {
  const std::string text = ResultSettingsJson(s);
  return "fnv1a64:" + FnvHex(Fnv1a(text));
}

}  // namespace dippas
