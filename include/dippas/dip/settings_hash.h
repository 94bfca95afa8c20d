// What decides an anonymized image, as one hash: written by `dippas anonymize` into the metrics
// (settings_hash) and recomputed by `dippas batch`, which redoes an item finished with other
// settings. Not included: the device, the thread count (a run moved to another machine is not
// redone) and the fingerprint scoring NCC/PCE only (--eval-prnu: metrics, not pixels). The image
// is identified by its item (its output path), not by its bytes, so a resume reads no photo.
#pragma once

#include <cstdint>
#include <string>

#include "dippas/dip/options.h"

namespace dippas {

struct ResultSettings {
  std::string method;   // dip | subtract | denoise
  std::string mode;     // aware | blind
  int64_t crop = 0;     // centre crop side, 0 = whole image
  DipOptions dip;       // after the config files and --set
  std::string prnu;     // fingerprint file of aware mode (its bytes count, not its path); "" blind
  std::string mat_var;  // the .mat variable read from it ("" = the only one)
};

// The canonical JSON the hash covers (sorted keys; the fingerprint as its bytes' hash). Keys
// added to DipOptions after the hash existed are left out at their neutral value (the one that
// reproduces the builds before them), so adding a key changes no earlier run's hash.
// std::runtime_error naming the fingerprint when it cannot be read.
std::string ResultSettingsJson(const ResultSettings& settings);

// "fnv1a64:<16 hex digits>" of ResultSettingsJson.
std::string SettingsHash(const ResultSettings& settings);

// FNV-1a 64-bit of a file's bytes, as 16 hex digits. std::runtime_error naming the file.
std::string HashFileBytes(const std::string& path);

}  // namespace dippas
