// libFuzzer target for the config parser (ParseDipConfig, YAML or JSON text, and SetDipOption,
// the --set key=value path): any text either yields options that pass DipOptions::Check() or is
// refused with ConfigError naming the source; nothing else may happen (no crash, no other
// exception, no sanitizer report). Accepted options survive a round trip through
// DipOptionsToJson and the parser. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dippas/dip/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const dippas::DipOptions o = dippas::ParseDipConfig(text, "fuzz.yaml");
    try {
      o.Check();
    } catch (const std::invalid_argument&) {
      __builtin_trap();  // accepted options must be valid
    }
    const nlohmann::json j = dippas::DipOptionsToJson(o);
    const dippas::DipOptions again = dippas::ParseDipConfig(j.dump(), "round-trip.json");
    if (dippas::DipOptionsToJson(again) != j) __builtin_trap();
  } catch (const dippas::ConfigError&) {
  }
  // The same text as one --set key=value (no Check(): options set one by one may disagree).
  const size_t eq = text.find('=');
  if (eq != std::string::npos) {
    dippas::DipOptions o;
    try {
      dippas::SetDipOption(o, text.substr(0, eq), text.substr(eq + 1));
    } catch (const dippas::ConfigError&) {
    }
  }
  return 0;
}
