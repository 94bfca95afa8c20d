#include "dippas/io/pool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "dippas/io/atomic_file.h"
#include "dippas/io/limits.h"
#include "dippas/io/npy.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pool I/O assumes a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kPreamble = 10;  // magic (6), version (2), header length (2) of .npy v1.0

std::string ShapeDict(int64_t n, int64_t h, int64_t w) {
  return "{'descr': '|u1', 'fortran_order': False, 'shape': (" + std::to_string(n) + ", " +
         std::to_string(h) + ", " + std::to_string(w) + ", 3), }";
}

// Total header size (preamble + dict + padding + '\n') for any N up to INT64_MAX, a multiple of
// 64: reserving the widest N lets Close() rewrite N in place without moving the frames. 128
// bytes for every realistic H, W.
size_t HeaderSize(int64_t h, int64_t w) {
  const size_t need = kPreamble + ShapeDict(std::numeric_limits<int64_t>::max(), h, w).size() + 1;
  return (need + 63) / 64 * 64;
}

std::string Header(int64_t n, int64_t h, int64_t w, size_t total) {
  std::string dict = ShapeDict(n, h, w);
  dict.append(total - kPreamble - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>((dict.size() >> 8) & 0xff);
  return out + dict;
}

std::string Errno() { return std::strerror(errno); }

// Writes all of `size` bytes at `offset`; false with errno set on failure.
bool PwriteAll(int fd, const void* data, size_t size, off_t offset) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = PwriteWithFaults(fd, p, size, offset);  // pwrite, or the test hook
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = ENOSPC;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

// mkstemp in `dir` for the final name `name`: 0600, like the frames it will hold.
std::pair<int, std::string> MakeTemp(const fs::path& dir, const std::string& name,
                                     const std::string& final_path) {
  std::string tmpl = (dir / ("." + name + ".tmp-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const int fd = mkstemp(buf.data());
  if (fd < 0) throw IoError(final_path + ": cannot create a temporary file: " + Errno());
  return {fd, std::string(buf.data())};
}

void CreatePrivateDir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw IoError(dir + ": exists and is not a folder");
    return;  // an existing folder keeps the mode its owner gave it
  }
  const fs::path p(dir);
  if (p.has_parent_path() && !p.parent_path().empty()) {
    fs::create_directories(p.parent_path(), ec);
    if (ec) throw IoError(dir + ": cannot create folder: " + ec.message());
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw IoError(dir + ": cannot create folder: " + Errno());
  }
  // mkdir's mode goes through the umask; the pool holds near-copies of the photo: owner only.
  chmod(dir.c_str(), 0700);
}

}  // namespace

// --- PoolWriter ------------------------------------------------------------

PoolWriter::PoolWriter(const std::string& dir, int64_t height, int64_t width, nlohmann::json meta,
                       PoolSpool spool)
    : dir_(dir), height_(height), width_(width), meta_(std::move(meta)), spool_(spool) {
  if (height < 1 || width < 1) {
    throw std::invalid_argument("pool size must be positive, got " + std::to_string(height) + "x" +
                                std::to_string(width));
  }
  if (meta_.is_null()) meta_ = nlohmann::json::object();
  if (!meta_.is_object()) throw std::invalid_argument("pool metadata must be a JSON object");
  CreatePrivateDir(dir_);
  npy_path_ = (fs::path(dir_) / "pool.npy").string();
  json_path_ = (fs::path(dir_) / "pool.json").string();
  meta_["size"] = {height_, width_};
  meta_["candidates"] = nlohmann::json::array();
  meta_["complete"] = false;

  if (spool_ == PoolSpool::kResumable) {
    // Not a registered temporary: it outlives an interruption, for the checkpoint to resume.
    npy_tmp_ = (fs::path(dir_) / kPartialName).string();
    fd_ = open(npy_tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    created_ = fd_ >= 0;
    if (fd_ < 0 && errno == EEXIST) fd_ = open(npy_tmp_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) throw IoError(npy_tmp_ + ": cannot open: " + Errno());
  } else {
    auto [fd, tmp] = MakeTemp(dir_, "pool.npy", npy_path_);
    fd_ = fd;
    npy_tmp_ = tmp;
    npy_slot_ = RegisterTemporaryFile(npy_tmp_);  // removed even by a second Ctrl-C
  }
  header_size_ = HeaderSize(height_, width_);
  const std::string header = Header(0, height_, width_, header_size_);
  if (!PwriteAll(fd_, header.data(), header.size(), 0)) {
    const std::string reason = Errno();
    Cleanup();
    throw IoError(npy_path_ + ": write failed: " + reason);
  }
}

PoolWriter::~PoolWriter() {
  if (!closed_) Cleanup();
}

void PoolWriter::Cleanup() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // A resumable spool stays for the checkpoint, unless it was made here and never got a frame.
  if (!npy_tmp_.empty() && (spool_ == PoolSpool::kTemporary || (created_ && count_ == 0)))
    std::remove(npy_tmp_.c_str());
  if (!json_tmp_.empty()) std::remove(json_tmp_.c_str());
  npy_tmp_.clear();
  json_tmp_.clear();
  UnregisterTemporaryFile(npy_slot_);
  UnregisterTemporaryFile(json_slot_);
  npy_slot_ = json_slot_ = -1;
}

void PoolWriter::Append(const uint8_t* rgb_hwc, const nlohmann::json& record) {
  if (closed_ || fd_ < 0) throw std::logic_error("PoolWriter::Append after Close");
  if (!record.is_object())
    throw std::invalid_argument("pool candidate record must be a JSON object");
  const size_t frame = static_cast<size_t>(height_ * width_ * 3);
  const off_t offset = static_cast<off_t>(header_size_ + frame * static_cast<size_t>(count_));
  if (!PwriteAll(fd_, rgb_hwc, frame, offset)) {
    // count_ is unchanged: the next Append overwrites the partial frame and Close truncates
    // the file to whole frames, so the pool stays closable after the error.
    throw IoError(npy_path_ + ": write failed (candidate " + std::to_string(count_) +
                  "): " + Errno());
  }
  nlohmann::json entry = record;
  entry["index"] = count_;
  meta_["candidates"].push_back(std::move(entry));
  ++count_;
}

nlohmann::json PoolWriter::ResumeState() {
  if (spool_ != PoolSpool::kResumable)
    throw std::logic_error("PoolWriter::ResumeState: not resumable");
  if (closed_ || fd_ < 0) throw std::logic_error("PoolWriter::ResumeState after Close");
  if (fdatasync(fd_) != 0) throw IoError(npy_tmp_ + ": cannot flush to disk: " + Errno());
  return {{"count", count_}, {"candidates", meta_["candidates"]}};
}

void PoolWriter::ResumeFrom(const nlohmann::json& state) {
  if (spool_ != PoolSpool::kResumable)
    throw std::logic_error("PoolWriter::ResumeFrom: not resumable");
  if (closed_ || fd_ < 0) throw std::logic_error("PoolWriter::ResumeFrom after Close");
  if (!state.is_object() || !state.contains("count") || !state["count"].is_number_integer() ||
      !state.contains("candidates") || !state["candidates"].is_array() ||
      state["count"].get<int64_t>() != static_cast<int64_t>(state["candidates"].size())) {
    throw std::invalid_argument("pool resume state: expected {count, candidates[count]}");
  }
  const int64_t n = state["count"].get<int64_t>();
  const size_t frame = static_cast<size_t>(height_ * width_ * 3);
  struct stat st {};
  if (fstat(fd_, &st) != 0) throw IoError(npy_tmp_ + ": cannot read its size: " + Errno());
  const int64_t held =
      st.st_size < static_cast<off_t>(header_size_)
          ? 0
          : static_cast<int64_t>((static_cast<size_t>(st.st_size) - header_size_) / frame);
  if (held < n) {
    throw IoError(npy_tmp_ + ": holds " + std::to_string(held) + " candidates of " +
                  std::to_string(height_) + "x" + std::to_string(width_) + ", the checkpoint " +
                  std::to_string(n) + ": not the pool of the interrupted run");
  }
  count_ = n;
  meta_["candidates"] = state["candidates"];
}

void PoolWriter::FinishTemporaries() {
  const std::string header = Header(count_, height_, width_, header_size_);
  const off_t end = static_cast<off_t>(header_size_ + static_cast<size_t>(height_ * width_ * 3) *
                                                          static_cast<size_t>(count_));
  if (!PwriteAll(fd_, header.data(), header.size(), 0) || ftruncate(fd_, end) != 0 ||
      fsync(fd_) != 0) {
    throw IoError(npy_path_ + ": write failed: " + Errno());
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw IoError(npy_path_ + ": write failed: " + Errno());

  meta_["complete"] = true;
  const std::string text = meta_.dump(2) + "\n";
  auto [jfd, jtmp] = MakeTemp(dir_, "pool.json", json_path_);
  json_tmp_ = jtmp;
  json_slot_ = RegisterTemporaryFile(json_tmp_);
  const bool ok = PwriteAll(jfd, text.data(), text.size(), 0) && fsync(jfd) == 0;
  const std::string reason = Errno();
  if (::close(jfd) != 0 || !ok) {
    throw IoError(json_path_ + ": write failed: " + (ok ? Errno() : reason));
  }
}

void PoolWriter::StageInto(OutputSet& outputs) {
  if (closed_ || fd_ < 0) throw std::logic_error("PoolWriter closed twice");
  try {
    FinishTemporaries();
  } catch (...) {
    Cleanup();
    closed_ = true;
    throw;
  }
  // pool.json last, and an older one removed first (see Close).
  outputs.Adopt(npy_tmp_, npy_path_, npy_slot_);
  outputs.Adopt(json_tmp_, json_path_, json_slot_, /*remove_first=*/true);
  npy_tmp_.clear();
  json_tmp_.clear();
  npy_slot_ = json_slot_ = -1;
  closed_ = true;
}

void PoolWriter::Close() {
  if (closed_ || fd_ < 0) throw std::logic_error("PoolWriter::Close called twice");
  try {
    FinishTemporaries();
    // An older pool in DIR loses its index first: a reader then sees "missing pool.json"
    // rather than an old index over new frames.
    if (std::remove(json_path_.c_str()) != 0 && errno != ENOENT) {
      throw IoError(json_path_ + ": cannot replace: " + Errno());
    }
    if (std::rename(npy_tmp_.c_str(), npy_path_.c_str()) != 0) {
      throw IoError(npy_path_ + ": cannot rename into place: " + Errno());
    }
    npy_tmp_.clear();
    UnregisterTemporaryFile(npy_slot_);
    npy_slot_ = -1;
    // pool.json last: its presence (with "complete": true) marks a whole pool.
    if (std::rename(json_tmp_.c_str(), json_path_.c_str()) != 0) {
      const std::string why = Errno();
      std::remove(npy_path_.c_str());
      throw IoError(json_path_ + ": cannot rename into place: " + why);
    }
    json_tmp_.clear();
    UnregisterTemporaryFile(json_slot_);
    json_slot_ = -1;
    const int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      fsync(dfd);  // the renames themselves survive a crash
      ::close(dfd);
    }
  } catch (...) {
    Cleanup();
    closed_ = true;
    throw;
  }
  closed_ = true;
}

// --- PoolReader ------------------------------------------------------------

PoolReader::PoolReader(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw IoError(dir + ": no such pool folder");
  if (!fs::is_directory(dir, ec)) throw IoError(dir + ": not a folder (expected a pool folder)");
  json_path_ = (fs::path(dir) / "pool.json").string();
  npy_path_ = (fs::path(dir) / "pool.npy").string();

  // pool.json: the index, written last by the writer.
  if (!fs::exists(json_path_, ec)) {
    throw IoError(json_path_ + ": no such file (not a pool folder, or the pool was not completed)");
  }
  index_ = nlohmann::json::parse(ReadFileBytes(json_path_), nullptr, false);
  auto bad_json = [&](const std::string& why) { throw IoError(json_path_ + ": " + why); };
  if (index_.is_discarded()) bad_json("invalid JSON");
  if (!index_.is_object()) bad_json("expected a JSON object");
  if (!index_.contains("complete") || index_["complete"] != true) {
    bad_json("pool is incomplete (no \"complete\": true)");
  }
  const auto& size = index_.contains("size") ? index_["size"] : nlohmann::json();
  if (!size.is_array() || size.size() != 2 || !size[0].is_number_integer() ||
      !size[1].is_number_integer() || size[0].get<int64_t>() < 1 || size[1].get<int64_t>() < 1) {
    bad_json("\"size\" must be [H, W] with positive integers");
  }
  height_ = size[0].get<int64_t>();
  width_ = size[1].get<int64_t>();
  if (height_ > kMaxImagePixels / width_) {
    bad_json("\"size\" " + std::to_string(height_) + "x" + std::to_string(width_) +
             " is above the limit of 256 megapixels");
  }
  if (!index_.contains("candidates") || !index_["candidates"].is_array()) {
    bad_json("\"candidates\" must be an array");
  }
  for (const auto& c : index_["candidates"]) {
    if (!c.is_object()) bad_json("every entry of \"candidates\" must be an object");
  }
  count_ = static_cast<int64_t>(index_["candidates"].size());

  // pool.npy: header only; the frames are read one at a time.
  if (!fs::exists(npy_path_, ec)) throw IoError(npy_path_ + ": no such file");
  if (!fs::is_regular_file(npy_path_, ec)) {  // a FIFO would block the open below
    throw IoError(npy_path_ +
                  ": not a regular file (a FIFO, device or socket cannot be read as input)");
  }
  const auto file_size = fs::file_size(npy_path_, ec);
  if (ec) throw IoError(npy_path_ + ": cannot read: " + ec.message());
  std::ifstream in(npy_path_, std::ios::binary);
  if (!in) throw IoError(npy_path_ + ": cannot open: " + Errno());
  auto fail = [&](const std::string& why) {
    throw IoError(npy_path_ + ": not a valid pool .npy: " + why);
  };
  char pre[12] = {};
  in.read(pre, 10);
  if (in.gcount() != 10 || std::memcmp(pre, kMagic, 6) != 0)
    fail("bad magic (expected \\x93NUMPY)");
  const int major = static_cast<unsigned char>(pre[6]);
  size_t header_len = 0, offset = 10;
  if (major == 1) {
    header_len = static_cast<unsigned char>(pre[8]) | (static_cast<unsigned char>(pre[9]) << 8);
  } else if (major == 2 || major == 3) {
    in.read(pre + 10, 2);
    if (in.gcount() != 2) fail("truncated header");
    for (int i = 0; i < 4; ++i)
      header_len |= static_cast<size_t>(static_cast<unsigned char>(pre[8 + i])) << (8 * i);
    offset = 12;
  } else {
    fail("unsupported format version " + std::to_string(major));
  }
  if (header_len > (1u << 20)) fail("header too long");
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (static_cast<size_t>(in.gcount()) != header_len) fail("truncated header");
  data_offset_ = offset + header_len;

  // npy.cc's header scanners: linear time, so a crafted header cannot exhaust the stack.
  const std::string descr = NpyHeaderValue(header, "descr");
  const std::string fortran = NpyHeaderValue(header, "fortran_order");
  const std::string shape_s = NpyHeaderValue(header, "shape");
  if (descr.empty() || fortran.empty() || shape_s.empty())
    fail("header lacks descr, fortran_order or shape");
  const std::string d = descr.substr(1, descr.size() - 2);
  if (d != "|u1" && d != "<u1" && d != "=u1") fail("dtype '" + d + "', expected uint8 ('|u1')");
  if (fortran != "False") fail("Fortran order, expected C order");
  std::vector<int64_t> shape;
  if (!NpyShapeValues(shape_s, &shape)) fail("shape " + shape_s + " is implausibly large");
  for (const int64_t v : shape) {
    if (v >= 1000000000000) fail("shape " + shape_s + " is implausibly large");
  }
  if (shape.size() != 4 || shape[3] != 3) fail("shape " + shape_s + ", expected (N, H, W, 3)");
  if (shape[1] != height_ || shape[2] != width_) {
    throw IoError(npy_path_ + ": frames are " + std::to_string(shape[1]) + "x" +
                  std::to_string(shape[2]) + " but " + json_path_ + " says " +
                  std::to_string(height_) + "x" + std::to_string(width_));
  }
  if (shape[0] != count_) {
    throw IoError(npy_path_ + ": holds " + std::to_string(shape[0]) + " candidates but " +
                  json_path_ + " lists " + std::to_string(count_));
  }
  // N·H·W·3 in checked arithmetic: N is bounded only by pool.json's length.
  int64_t data_bytes = 0;
  if (__builtin_mul_overflow(count_, height_ * width_ * 3, &data_bytes) ||
      data_bytes > std::numeric_limits<int64_t>::max() - static_cast<int64_t>(data_offset_)) {
    fail("shape " + shape_s + " is implausibly large");
  }
  const uintmax_t expected = data_offset_ + static_cast<uintmax_t>(data_bytes);
  if (file_size < expected) {
    fail("truncated data: " + std::to_string(file_size) + " bytes, expected " +
         std::to_string(expected) + " for shape " + shape_s);
  }
  if (file_size > expected) {
    fail(std::to_string(file_size - expected) + " bytes beyond the " + std::to_string(count_) +
         " candidates of shape " + shape_s);
  }
}

std::vector<uint8_t> PoolReader::Read(int64_t i) const {
  if (i < 0 || i >= count_) {
    throw std::out_of_range("pool candidate " + std::to_string(i) + " out of range (pool holds " +
                            std::to_string(count_) + ")");
  }
  const size_t frame = static_cast<size_t>(height_ * width_ * 3);
  std::vector<uint8_t> out(frame);
  std::ifstream in(npy_path_, std::ios::binary);
  if (!in) throw IoError(npy_path_ + ": cannot open: " + Errno());
  in.seekg(static_cast<std::streamoff>(data_offset_ + frame * static_cast<size_t>(i)));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(frame));
  if (static_cast<size_t>(in.gcount()) != frame) {
    throw IoError(npy_path_ + ": truncated data at candidate " + std::to_string(i));
  }
  return out;
}

}  // namespace dippas
