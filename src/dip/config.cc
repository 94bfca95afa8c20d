#include "dippas/dip/config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <vector>

#include "dippas/io/limits.h"

namespace dippas {
namespace {

// One DipOptions field: exactly one of the member pointers is set.
struct Field {
  const char* key;
  double DipOptions::*number = nullptr;
  int64_t DipOptions::*integer = nullptr;
  std::vector<int64_t> DipOptions::*list = nullptr;
};

const std::vector<Field>& Fields() {
  static const std::vector<Field> fields = {
      {"sigma", &DipOptions::sigma},
      {"input_depth", nullptr, &DipOptions::input_depth},
      {"filters", nullptr, nullptr, &DipOptions::filters},
      {"skips", nullptr, nullptr, &DipOptions::skips},
      {"alpha", &DipOptions::alpha},
      {"lr", &DipOptions::lr},
      {"input_noise_std", &DipOptions::input_noise_std},
      {"reg_noise_std", &DipOptions::reg_noise_std},
      {"philox_noise", nullptr, &DipOptions::philox_noise},
      {"fused_input", nullptr, &DipOptions::fused_input},
      {"fused_norm", nullptr, &DipOptions::fused_norm},
      {"fused_decoder", nullptr, &DipOptions::fused_decoder},
      {"fused_upsample", nullptr, &DipOptions::fused_upsample},
      {"direct_conv", nullptr, &DipOptions::direct_conv},
      {"psnr_stop", &DipOptions::psnr_stop},
      {"psnr_min", &DipOptions::psnr_min},
      {"max_iterations", nullptr, &DipOptions::max_iterations},
      {"plateau_window", nullptr, &DipOptions::plateau_window},
      {"pool_max", nullptr, &DipOptions::pool_max},
      {"restarts", nullptr, &DipOptions::restarts},
      {"prnu_weight", &DipOptions::prnu_weight},
      {"prnu_block", nullptr, &DipOptions::prnu_block},
      {"gamma_lr", &DipOptions::gamma_lr},
      {"block_size", nullptr, &DipOptions::block_size},
      {"top", nullptr, &DipOptions::top},
      {"order_by_abs", nullptr, &DipOptions::order_by_abs},
      {"select_residual", &DipOptions::select_residual},
      {"sigmoid_floor", &DipOptions::sigmoid_floor},
      {"seed", nullptr, &DipOptions::seed},
      {"tile_size", nullptr, &DipOptions::tile_size},
      {"tile_margin", nullptr, &DipOptions::tile_margin},
      {"warm_start", nullptr, &DipOptions::warm_start},
      {"concurrent_tiles", nullptr, &DipOptions::concurrent_tiles},
      {"checkpoint_every", nullptr, &DipOptions::checkpoint_every},
      {"checkpoint_seconds", &DipOptions::checkpoint_seconds},
  };
  return fields;
}

const Field* FindField(const std::string& key) {
  for (const auto& f : Fields()) {
    if (key == f.key) return &f;
  }
  return nullptr;
}

std::string KnownKeys() {
  std::string out;
  for (const auto& k : DipOptionKeys()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

const char* Expected(const Field& f) {
  if (f.number) return "expected a number";
  if (f.integer) return "expected an integer";
  return "expected a list of positive integers";
}

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// YAML allows a leading '+'; from_chars does not, so drop it (but not "+-1").
std::string_view DropPlus(std::string_view s) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  return s;
}

// std::from_chars: locale-independent and must consume the whole text, so
// "1.5" is not an integer and "3x" is not a number.
std::optional<double> ParseNumber(std::string_view s) {
  s = DropPlus(s);
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::optional<int64_t> ParseInteger(std::string_view s) {
  s = DropPlus(s);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int64_t> ParsePositive(std::string_view s) {
  auto v = ParseInteger(s);
  if (v && *v < 1) return std::nullopt;
  return v;
}

// A plain (unquoted) scalar: a quoted "0.01" is a string in JSON and YAML alike,
// and booleans/null fall out because they do not parse as numbers.
bool IsPlainScalar(const YAML::Node& n) {
  const std::string& tag = n.Tag();
  return n.IsScalar() &&
         (tag == "?" || tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float");
}

// What the user wrote, for the error message.
std::string Describe(const YAML::Node& n) {
  if (n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (!IsPlainScalar(n)) return "the string \"" + n.Scalar() + "\"";
  return "'" + n.Scalar() + "'";
}

// Sets `f` from a YAML node; false when the node has the wrong type, with `got`
// describing the offending node (a list item, so the message can show "-1").
// Not a YAML::Node out-parameter: assigning to a bound Node writes through.
bool SetFromNode(DipOptions& o, const Field& f, const YAML::Node& n, std::string& got) {
  got = Describe(n);
  if (f.list) {
    if (!n.IsSequence()) return false;
    std::vector<int64_t> values;
    for (const auto& item : n) {
      const auto v = IsPlainScalar(item) ? ParsePositive(item.Scalar()) : std::nullopt;
      if (!v) {
        got = Describe(item);
        return false;
      }
      values.push_back(*v);
    }
    o.*f.list = std::move(values);
    return true;
  }
  if (!IsPlainScalar(n)) return false;
  if (f.number) {
    const auto v = ParseNumber(n.Scalar());
    if (!v) return false;
    o.*f.number = *v;
  } else {
    const auto v = ParseInteger(n.Scalar());
    if (!v) return false;
    o.*f.integer = *v;
  }
  return true;
}

// Every error names its source first (path or "--key").
[[noreturn]] void Fail(const std::string& name, const std::string& why) {
  throw ConfigError(name + ": " + why);
}

// Counts the documents of a YAML stream without building them. YAML::LoadAll loops for ever,
// allocating, on some malformed streams such as a lone "," (yaml-cpp 0.7, jbeder/yaml-cpp#1040;
// found by fuzz/fuzz_config.cc): the parser keeps returning empty documents without consuming
// the token. Here a document that starts where the previous one did is that error.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark start;
};

int CountDocuments(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  int documents = 0;
  int last_start = -1;
  while (parser.HandleNextDocument(counter)) {
    if (counter.start.pos == last_start) {
      const auto pos = static_cast<size_t>(counter.start.pos);
      const char c = pos < text.size() ? text[pos] : ' ';
      throw YAML::ParserException(counter.start, c > ' ' && c < 127 ? std::string("unexpected '") + c + "'"
                                                                     : std::string("unexpected text"));
    }
    last_start = counter.start.pos;
    ++documents;
  }
  return documents;
}

std::string LineOf(const YAML::Node& n) {
  const auto line = n.Mark().line;
  return line >= 0 ? " at line " + std::to_string(line + 1) : "";
}

}  // namespace

DipOptions ParseDipConfig(const std::string& text, const std::string& name, DipOptions base) {
  int documents = 0;
  YAML::Node root;
  try {
    documents = CountDocuments(text);  // not YAML::LoadAll: see DocumentCounter
    if (documents == 1) root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Fail(name, "syntax error at line " + std::to_string(e.mark.line + 1) + ", column " +
                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  // Load() would silently ignore a second document; a config has one.
  if (documents > 1) {
    Fail(name, "holds " + std::to_string(documents) + " YAML documents, expected one");
  }
  if (documents == 0 || root.IsNull()) return base;  // an empty or comment-only file
  if (!root.IsMap()) {
    Fail(name, "expected a mapping of keys to values at the top level, got " + Describe(root));
  }

  std::set<std::string> seen;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) Fail(name, "keys must be plain names" + LineOf(kv.first));
    const std::string key = kv.first.Scalar();
    const Field* f = FindField(key);
    if (!f) {
      Fail(name,
           "unknown key '" + key + "'" + LineOf(kv.first) + " (known keys: " + KnownKeys() + ")");
    }
    // yaml-cpp keeps duplicate keys; the last one winning silently would hide typos.
    if (!seen.insert(key).second) Fail(name, "key '" + key + "' appears twice" + LineOf(kv.first));
    std::string got;
    if (!SetFromNode(base, *f, kv.second, got)) {
      Fail(name, "key '" + key + "': " + Expected(*f) + ", got " + got + LineOf(kv.first));
    }
  }
  try {
    base.Check();
  } catch (const std::invalid_argument& e) {
    Fail(name, e.what());
  }
  return base;
}

DipOptions LoadDipConfig(const std::string& path, DipOptions base) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw ConfigError(path + ": no such file");
  if (ec) throw ConfigError(path + ": cannot read: " + ec.message());
  if (fs::is_directory(status)) throw ConfigError(path + ": no such file (it is a directory)");
  // A FIFO or device would block or never end (limits.h): regular files of bounded size only.
  if (!fs::is_regular_file(status)) {
    throw ConfigError(path +
                      ": not a regular file (a FIFO, device or socket cannot be read as input)");
  }
  const auto size = fs::file_size(path, ec);
  if (!ec && size > static_cast<uintmax_t>(kMaxInputFileBytes)) {
    throw ConfigError(path + ": file is " + std::to_string(size) +
                      " bytes, above the limit of 2 GiB for an input file");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) throw ConfigError(path + ": cannot read");
  return ParseDipConfig(text.str(), path, std::move(base));
}

nlohmann::json DipOptionsToJson(const DipOptions& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& key : DipOptionKeys()) {
    const Field* f = FindField(key);
    // Only reachable when options.cc gains a key this file does not know.
    if (!f) throw std::logic_error("DipOptionsToJson: no field for key '" + key + "'");
    if (f->number) {
      j[key] = o.*f->number;
    } else if (f->integer) {
      j[key] = o.*f->integer;
    } else {
      j[key] = o.*f->list;
    }
  }
  return j;
}

void SetDipOption(DipOptions& o, const std::string& key, const std::string& value) {
  const std::string name = "--" + key;
  const Field* f = FindField(key);
  if (!f) Fail(name, "unknown key (known keys: " + KnownKeys() + ")");
  const std::string_view text = Trim(value);
  const std::string got = ", got '" + value + "'";
  if (f->list) {
    // "16,32,64", optionally in brackets as in the config file.
    std::string_view items = text;
    if (items.size() >= 2 && items.front() == '[' && items.back() == ']') {
      items = Trim(items.substr(1, items.size() - 2));
    }
    std::vector<int64_t> values;
    while (true) {
      const auto comma = items.find(',');
      const auto v = ParsePositive(Trim(items.substr(0, comma)));
      if (!v) Fail(name, std::string(Expected(*f)) + got);
      values.push_back(*v);
      if (comma == std::string_view::npos) break;
      items.remove_prefix(comma + 1);
    }
    o.*f->list = std::move(values);
  } else if (f->number) {
    const auto v = ParseNumber(text);
    if (!v) Fail(name, std::string(Expected(*f)) + got);
    o.*f->number = *v;
  } else {
    const auto v = ParseInteger(text);
    if (!v) Fail(name, std::string(Expected(*f)) + got);
    o.*f->integer = *v;
  }
}

}  // namespace dippas
