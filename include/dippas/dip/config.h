// Config files for DipOptions (SPEC §8): YAML or JSON, keys = field names.
// Kept free of torch and OpenCV so the CLI can validate a config before any
// heavy library is touched.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "dippas/dip/options.h"

namespace dippas {

// Every message starts with the file path (or "--<key>" for SetDipOption), so
// the user knows which input to fix.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads a YAML or JSON file (one parser handles both, so the extension does not
// matter). Starts from `base` and sets only the keys present, then runs Check().
// An empty file returns `base` (checked).
DipOptions LoadDipConfig(const std::string& path, DipOptions base = {});

// The same from text; `name` stands for the path in error messages.
DipOptions ParseDipConfig(const std::string& text, const std::string& name, DipOptions base = {});

// Every key of DipOptionKeys() with its value; filters/skips as arrays.
nlohmann::json DipOptionsToJson(const DipOptions& o);

// Sets one key from a command-line string with the type checks of the config
// file; filters/skips take "16,32,64". Does not run Check(): options set one by
// one may be inconsistent until the last one (e.g. filters before skips).
void SetDipOption(DipOptions& o, const std::string& key, const std::string& value);

}  // namespace dippas
