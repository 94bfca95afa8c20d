#include "dippas/io/csv.h"

#include <algorithm>
#include <stdexcept>

namespace dippas {

bool SplitCsvFields(const std::string& text, std::vector<std::string>& fields) {
  fields.assign(1, std::string());
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  for (auto& f : fields) {  // surrounding blanks are never part of a path or number here
    const auto b = f.find_first_not_of(" \t"), e = f.find_last_not_of(" \t");
    f = b == std::string::npos ? "" : f.substr(b, e - b + 1);
  }
  return !quoted;
}

bool ReadCsvRecord(std::istream& in, std::vector<std::string>& fields, int64_t& line) {
  fields.clear();
  std::string raw;
  if (!std::getline(in, raw)) return false;
  ++line;
  // Each quote opens or closes a quoted field ("" inside one is two): while their count is odd,
  // a quoted field goes on on the next line. Counted line by line, not split again, so that a
  // stray quote in a long file costs one pass.
  auto quotes = std::count(raw.begin(), raw.end(), '"');
  std::string more;
  while (quotes % 2 != 0) {
    if (!std::getline(in, more))
      throw std::invalid_argument("unterminated quote at line " + std::to_string(line));
    ++line;
    raw += "\n" + more;
    quotes += std::count(more.begin(), more.end(), '"');
  }
  SplitCsvFields(raw, fields);
  return true;
}

std::string CsvQuote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace dippas
