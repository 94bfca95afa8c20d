#include "dippas/io/npy.h"

#include <cstring>

#include "dippas/io/atomic_file.h"

namespace dippas {
namespace {

// Little-endian hosts only (x86-64, aarch64): asserted at compile time.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy I/O assumes a little-endian host");

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// A header longer than this is refused: ours are 118 bytes, numpy's own limit is 10000.
constexpr size_t kMaxHeader = 1 << 20;

}  // namespace

// Linear scans, no std::regex: libstdc++'s regex recurses once per character matched, so a
// crafted header of some 100 kB of spaces overflowed the stack (found by fuzz/fuzz_npy.cc).
std::string NpyHeaderValue(const std::string& header, const std::string& key) {
  const size_t n = header.size(), k = key.size();
  for (size_t q = 0; q + k + 2 <= n; ++q) {
    // 'key' or "key", then optional space, ':', optional space, then the value.
    if ((header[q] != '\'' && header[q] != '"') || header.compare(q + 1, k, key) != 0) continue;
    size_t i = q + 1 + k;
    if (header[i] != '\'' && header[i] != '"') continue;
    for (++i; i < n && IsSpace(header[i]); ++i) {
    }
    if (i >= n || header[i] != ':') continue;
    for (++i; i < n && IsSpace(header[i]); ++i) {
    }
    if (i >= n) continue;
    const char c = header[i];
    size_t end = std::string::npos;
    if (c == '\'' || c == '"') {
      end = header.find(c, i + 1);
    } else if (c == '(') {
      end = header.find(')', i + 1);
    } else if (header.compare(i, 4, "True") == 0) {
      end = i + 3;
    } else if (header.compare(i, 5, "False") == 0) {
      end = i + 4;
    }
    if (end != std::string::npos) return header.substr(i, end - i + 1);
  }
  return "";
}

bool NpyShapeValues(const std::string& tuple, std::vector<int64_t>* values) {
  values->clear();
  for (size_t i = 0; i < tuple.size();) {
    if (tuple[i] < '0' || tuple[i] > '9') {
      ++i;
      continue;
    }
    int64_t v = 0;
    size_t digits = 0;
    for (; i < tuple.size() && tuple[i] >= '0' && tuple[i] <= '9'; ++i, ++digits) {
      if (digits >= 18) return false;  // beyond 10^18: no array of ours, and int64 stays safe
      v = v * 10 + (tuple[i] - '0');
    }
    values->push_back(v);
  }
  return true;
}

Array2D ParseNpy(const std::string& bytes, const std::string& name) {
  auto fail = [&](const std::string& why) -> void { throw IoError(name + ": not a valid .npy file: " + why); };
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0) fail("bad magic (expected \\x93NUMPY)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    fail("unsupported format version " + std::to_string(major));
  }
  if (header_len > kMaxHeader) fail("header of " + std::to_string(header_len) + " bytes is too long");
  if (bytes.size() < offset + header_len) fail("truncated header");
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  std::string descr = NpyHeaderValue(header, "descr");
  const std::string fortran = NpyHeaderValue(header, "fortran_order");
  const std::string shape_s = NpyHeaderValue(header, "shape");
  if (descr.empty() || fortran.empty() || shape_s.empty()) fail("header lacks descr, fortran_order or shape");
  if (descr.front() != '\'' && descr.front() != '"') fail("descr is not a string");
  descr = descr.substr(1, descr.size() - 2);
  if (fortran != "True" && fortran != "False") fail("fortran_order is not True or False");
  // prnu-python's outputs (np.real of an ifft2) are saved Fortran-ordered:
  // read them, transposing to C order, rather than refuse the reference tool's files.
  const bool fortran_order = fortran == "True";
  if (shape_s.front() != '(') fail("shape is not a tuple");

  std::vector<int64_t> shape;
  if (!NpyShapeValues(shape_s, &shape)) fail("shape " + shape_s + " is implausibly large");
  auto shape_str = [&] {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
  };
  if (!(shape.size() == 2 || (shape.size() == 3 && shape[2] == 1))) {
    fail("shape " + shape_str() + " is not (H,W) or (H,W,1)");
  }
  size_t elem = 0;
  if (descr == "<f4" || descr == "=f4") elem = 4;
  else if (descr == "<f8" || descr == "=f8") elem = 8;
  else if (descr == "|u1" || descr == "<u1" || descr == "=u1") elem = 1;
  else fail("unsupported dtype '" + descr + "' (expected float32, float64 or uint8, little-endian)");

  Array2D out;
  out.rows = shape[0];
  out.cols = shape[1];
  size_t n = 0, need = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(out.rows), static_cast<size_t>(out.cols), &n) ||
      __builtin_mul_overflow(n, elem, &need)) {
    fail("shape " + shape_str() + " is implausibly large");
  }
  if (bytes.size() - offset < need) {
    fail("truncated data: " + std::to_string(bytes.size() - offset) + " bytes for shape " + shape_str() + ", expected " +
         std::to_string(n * elem));
  }
  out.data.resize(n);
  const char* p = bytes.data() + offset;
  auto value = [&](size_t i) -> float {
    if (elem == 4) {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    if (elem == 8) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      return static_cast<float>(v);
    }
    return static_cast<unsigned char>(p[i]);
  };
  const size_t rows = static_cast<size_t>(out.rows), cols = static_cast<size_t>(out.cols);
  if (n == 0) {
    // (0, W) or (H, 0): nothing to copy (and memcpy may not be handed the null data()).
  } else if (!fortran_order && elem == 4) {
    std::memcpy(out.data.data(), p, n * 4);
  } else if (!fortran_order) {
    for (size_t i = 0; i < n; ++i) out.data[i] = value(i);
  } else {
    for (size_t c = 0; c < cols; ++c) {
      for (size_t r = 0; r < rows; ++r) out.data[r * cols + c] = value(c * rows + r);
    }
  }
  return out;
}

Array2D ReadNpy(const std::string& path) { return ParseNpy(ReadFileBytes(path), path); }

std::string SerializeNpy(const Array2D& array) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(array.rows) + ", " +
                     std::to_string(array.cols) + "), }";
  // Pad so that magic(6)+version(2)+len(2)+header is a multiple of 64, ending in '\n'.
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>((dict.size() >> 8) & 0xff));
  out += dict;
  if (!array.data.empty()) {
    out.append(reinterpret_cast<const char*>(array.data.data()), array.data.size() * sizeof(float));
  }
  return out;
}

void WriteNpy(const std::string& path, const Array2D& array) {
  if (static_cast<int64_t>(array.data.size()) != array.rows * array.cols) {
    throw IoError(path + ": internal error: array data does not match its shape");
  }
  WriteFileAtomic(path, SerializeNpy(array));
}

}  // namespace dippas
