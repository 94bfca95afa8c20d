// .mat fingerprints through libmatio (optional at build time: DIPPAS_HAVE_MATIO).
#include "dippas/io/mat.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "dippas/io/limits.h"

#ifdef DIPPAS_HAVE_MATIO
#include <matio.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#endif

namespace dippas {
namespace {

namespace fs = std::filesystem;

std::string& MatVariableStorage() {
  static std::string name;
  return name;
}

bool HasMatExtension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".mat";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "(none)" : s;
}

// A regular file of bounded size: a FIFO would block libmatio, a huge file exhaust memory.
void CheckMatFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw IoError(path + ": cannot open: no such file");
  if (!S_ISREG(st.st_mode)) {
    throw IoError(path + ": not a regular file (a FIFO, device or socket cannot be read as input)");
  }
  if (st.st_size > kMaxInputFileBytes) throw IoError(path + ": file larger than 2 GiB");
}

#ifdef DIPPAS_HAVE_MATIO

// libmatio prints its errors to stderr by default; keep the last one for our message instead.
// It also reads past the end of a truncated file, or through a damaged compressed stream, with
// a warning at most: any warning or error while reading counts as a corrupt file.
std::mutex g_log_mutex;
std::string g_last_log;

void MatLog(int level, char* message) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (level <= 4) g_last_log = message ? message : "?";  // error, critical, warning
}

uint32_t U32(const unsigned char* p, bool little) {
  return little ? p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24
                : p[3] | p[2] << 8 | p[1] << 16 | static_cast<uint32_t>(p[0]) << 24;
}

// A level-5 file is a 128-byte header and tagged elements: each must end within the file
// (libmatio itself would read a truncated one as zeros or garbage). Other levels pass.
void CheckLevel5Layout(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char header[128];
  if (!in.read(reinterpret_cast<char*>(header), sizeof(header))) return;
  const bool little = header[126] == 'I' && header[127] == 'M';
  if (!little && !(header[126] == 'M' && header[127] == 'I')) return;
  const unsigned version = little ? header[124] | header[125] << 8 : header[125] | header[124] << 8;
  if (version != 0x0100) return;  // 7.3 is HDF5
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  uint64_t offset = 128;
  while (offset < size) {
    unsigned char tag[8];
    in.seekg(static_cast<std::streamoff>(offset));
    if (size - offset < 8 || !in.read(reinterpret_cast<char*>(tag), 8)) {
      throw IoError(path + ": truncated .mat file (an element tag is cut at byte " +
                    std::to_string(offset) + ")");
    }
    const uint32_t type = U32(tag, little), nbytes = U32(tag + 4, little);
    if (type >> 16) {  // small data element: 4 bytes of data in the tag
      offset += 8;
      continue;
    }
    if (nbytes > size - offset - 8) {
      throw IoError(path + ": truncated .mat file (an element of " + std::to_string(nbytes) +
                    " bytes at byte " + std::to_string(offset) + " goes past its end, " +
                    std::to_string(size) + " bytes)");
    }
    offset += 8 + nbytes;
    if (type != 15) offset = (offset + 7) & ~uint64_t{7};  // miCOMPRESSED is not padded
  }
}

std::string TakeLog() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string s;
  s.swap(g_last_log);
  return s;
}

struct MatCloser {
  void operator()(mat_t* m) const { Mat_Close(m); }
};
struct VarFreer {
  void operator()(matvar_t* v) const { Mat_VarFree(v); }
};
using MatFile = std::unique_ptr<mat_t, MatCloser>;
using MatVar = std::unique_ptr<matvar_t, VarFreer>;

MatFile OpenMat(const std::string& path) {
  static std::once_flag once;
  std::call_once(once, [] { Mat_LogInitFunc("dippas", MatLog); });
  CheckMatFile(path);
  CheckLevel5Layout(path);
  TakeLog();
  MatFile mat(Mat_Open(path.c_str(), MAT_ACC_RDONLY));
  if (!mat) {
    const std::string why = TakeLog();
    throw IoError(path + ": not a readable MATLAB .mat file" +
                  (why.empty() ? "" : " (" + why + ")"));
  }
  return mat;
}

std::vector<std::string> Names(mat_t* mat, const std::string& path) {
  std::vector<std::string> names;
  Mat_Rewind(mat);
  while (MatVar v{Mat_VarReadNextInfo(mat)}) {
    names.push_back(v->name ? v->name : "");
    if (names.size() > 100000) break;  // a crafted file: enough to say it is not a fingerprint
  }
  Mat_Rewind(mat);
  if (names.empty()) {
    const std::string why = TakeLog();
    throw IoError(path + ": not a MATLAB .mat file, or it holds no variables" +
                  (why.empty() ? "" : " (" + why + ")"));
  }
  return names;
}

const char* ClassName(matio_classes c) {
  switch (c) {
    case MAT_C_CELL:
      return "a cell array";
    case MAT_C_STRUCT:
      return "a struct";
    case MAT_C_OBJECT:
      return "an object";
    case MAT_C_CHAR:
      return "text (char)";
    case MAT_C_SPARSE:
      return "a sparse matrix";
    case MAT_C_FUNCTION:
      return "a function handle";
    default:
      return "not double or single values";
  }
}

#endif  // DIPPAS_HAVE_MATIO

}  // namespace

bool MatSupported() {
#ifdef DIPPAS_HAVE_MATIO
  return true;
#else
  return false;
#endif
}

void SetMatVariable(const std::string& name) { MatVariableStorage() = name; }
const std::string& MatVariable() { return MatVariableStorage(); }

#ifdef DIPPAS_HAVE_MATIO

std::vector<std::string> MatVariableNames(const std::string& path) {
  MatFile mat = OpenMat(path);
  return Names(mat.get(), path);
}

Array2D ReadMat(const std::string& path, const std::string& variable) {
  MatFile mat = OpenMat(path);
  const std::vector<std::string> names = Names(mat.get(), path);
  std::string name = variable;
  if (name.empty()) {
    if (names.size() != 1) {
      throw IoError(path + ": holds several variables (" + JoinNames(names) +
                    "): choose the fingerprint with --mat-var NAME");
    }
    name = names[0];
  } else if (std::find(names.begin(), names.end(), name) == names.end()) {
    throw IoError(path + ": no variable '" + name + "' (it holds " + JoinNames(names) + ")");
  }
  const std::string where = path + ": variable '" + name + "'";
  MatVar v(Mat_VarReadInfo(mat.get(), name.c_str()));
  if (!v) throw IoError(where + ": cannot be read (" + TakeLog() + ")");
  if (v->class_type != MAT_C_DOUBLE && v->class_type != MAT_C_SINGLE) {
    throw IoError(where + " is " + ClassName(v->class_type) +
                  ", expected a 2-D double or single array");
  }
  if (v->isComplex) throw IoError(where + " is complex, expected a real 2-D array");
  if (v->rank != 2) {
    throw IoError(where + " has " + std::to_string(v->rank) + " dimensions, expected a 2-D array");
  }
  const size_t rows = v->dims[0], cols = v->dims[1];
  if (rows == 0 || cols == 0) throw IoError(where + " is empty");
  if (rows > static_cast<size_t>(kMaxImagePixels) / cols) {
    throw IoError(where + " is " + std::to_string(rows) + "x" + std::to_string(cols) +
                  ", larger than 256 megapixels");
  }
  TakeLog();
  v.reset(Mat_VarRead(mat.get(), name.c_str()));
  const std::string read_error = TakeLog();
  if (!read_error.empty()) throw IoError(where + ": corrupt data (" + read_error + ")");
  if (!v || !v->data || v->rank != 2 || v->dims[0] != rows || v->dims[1] != cols ||
      (v->class_type != MAT_C_DOUBLE && v->class_type != MAT_C_SINGLE)) {
    throw IoError(where + ": truncated or corrupt data");
  }
  Array2D a;
  a.rows = static_cast<int64_t>(rows);
  a.cols = static_cast<int64_t>(cols);
  a.data.resize(rows * cols);
  // Column-major in the file: element (i,j) is at i + j·rows.
  const bool is_double = v->class_type == MAT_C_DOUBLE;
  const auto* d = static_cast<const double*>(v->data);
  const auto* f = static_cast<const float*>(v->data);
  for (size_t j = 0; j < cols; ++j) {
    for (size_t i = 0; i < rows; ++i) {
      const size_t src = i + j * rows;
      a.data[i * cols + j] = is_double ? static_cast<float>(d[src]) : f[src];
    }
  }
  return a;
}

#else  // !DIPPAS_HAVE_MATIO

std::vector<std::string> MatVariableNames(const std::string& path) {
  CheckMatFile(path);
  throw IoError(path + ": this build cannot read .mat files (rebuild with libmatio-dev installed)");
}

Array2D ReadMat(const std::string& path, const std::string&) {
  CheckMatFile(path);
  throw IoError(path + ": this build cannot read .mat files (rebuild with libmatio-dev installed)");
}

#endif  // DIPPAS_HAVE_MATIO

Array2D ReadFingerprintArray(const std::string& path) {
  return HasMatExtension(path) ? ReadMat(path, MatVariable()) : ReadNpy(path);
}

std::string DeviceFingerprintPath(const std::string& dir, const std::string& device) {
  const fs::path npy = fs::path(dir) / (device + ".npy");
  const fs::path mat = fs::path(dir) / (device + ".mat");
  std::error_code ec;
  if (!fs::exists(npy, ec) && fs::exists(mat, ec)) return mat.string();
  return npy.string();
}

}  // namespace dippas
