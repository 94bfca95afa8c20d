#include "dippas/io/npy.h"

#include <cstring>
#include <regex>

#include "dippas/io/atomic_file.h"

namespace dippas {
namespace {

// Little-endian hosts only (x86-64, aarch64): asserted at compile time.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy I/O assumes a little-endian host");

std::string HeaderValue(const std::string& header, const std::string& key) {
  // Values of the header dict are a quoted string, True/False, or a tuple.
  const std::regex re("['\"]" + key + "['\"]\\s*:\\s*('[^']*'|\"[^\"]*\"|True|False|\\([^)]*\\))");
  std::smatch m;
  if (!std::regex_search(header, m, re)) return "";
  return m[1].str();
}

}  // namespace

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
  if (bytes.size() < offset + header_len) fail("truncated header");
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  std::string descr = HeaderValue(header, "descr");
  const std::string fortran = HeaderValue(header, "fortran_order");
  const std::string shape_s = HeaderValue(header, "shape");
  if (descr.empty() || fortran.empty() || shape_s.empty()) fail("header lacks descr, fortran_order or shape");
  descr = descr.substr(1, descr.size() - 2);
  // prnu-python's outputs (np.real of an ifft2) are saved Fortran-ordered:
  // read them, transposing to C order, rather than refuse the reference tool's files.
  const bool fortran_order = fortran == "True";

  std::vector<int64_t> shape;
  {
    const std::regex num("\\d+");
    for (auto it = std::sregex_iterator(shape_s.begin(), shape_s.end(), num); it != std::sregex_iterator(); ++it) {
      shape.push_back(std::stoll(it->str()));
    }
  }
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
  const size_t n = static_cast<size_t>(out.rows * out.cols);
  if (bytes.size() - offset < n * elem) {
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
  if (!fortran_order && elem == 4) {
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
  out.append(reinterpret_cast<const char*>(array.data.data()), array.data.size() * sizeof(float));
  return out;
}

void WriteNpy(const std::string& path, const Array2D& array) {
  if (static_cast<int64_t>(array.data.size()) != array.rows * array.cols) {
    throw IoError(path + ": internal error: array data does not match its shape");
  }
  WriteFileAtomic(path, SerializeNpy(array));
}

}  // namespace dippas
