// CSV fields as dippas reads and writes them (RFC 4180 quoting): manifests, history files and
// the summaries of batch, evaluate and sweep.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

namespace dippas {

// `text` split into fields: "…" quotes a field (commas, line ends and "" for a quote inside),
// a carriage return outside quotes is dropped, blanks around each field are trimmed. False when
// a quote is still open at the end of `text` (the record goes on on the next line).
bool SplitCsvFields(const std::string& text, std::vector<std::string>& fields);

// One CSV record of `in`, which may span lines inside quotes (`line` counts the lines read);
// false at the end of the input. std::invalid_argument for an unterminated quote.
bool ReadCsvRecord(std::istream& in, std::vector<std::string>& fields, int64_t& line);

// `s` as one CSV field: as is, or quoted when it holds a comma, a quote or a line end.
std::string CsvQuote(const std::string& s);

}  // namespace dippas
