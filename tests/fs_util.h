// File-system facts the tests depend on, probed where they run.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

namespace dippas::test {

// True when `dir`'s file system keeps POSIX permission bits (not vfat or some network mounts):
// the checks of private (0700) folders skip visibly where it does not.
inline bool ModesKept(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path p = fs::path(dir) / "mode-probe";
  std::error_code ec;
  fs::create_directories(p, ec);
  const auto set_and_check = [&](fs::perms want) {
    fs::permissions(p, want, fs::perm_options::replace, ec);
    return !ec && (fs::status(p, ec).permissions() & fs::perms::all) == want;
  };
  const bool kept =
      set_and_check(fs::perms::owner_all) &&
      set_and_check(fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  fs::remove(p, ec);
  return kept;
}

}  // namespace dippas::test
