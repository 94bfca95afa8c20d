// The candidate pool on disk (SPEC §7 "optional: the candidate pool"): every admitted 8-bit
// candidate of the DIP, kept so that Î can be re-assembled with other B, L, τ without
// re-running the network.
//
// DIR/pool.npy   uint8 (N,H,W,3), C order, RGB, .npy v1.0 with a fixed-size header so that N is
//                rewritten in place when the pool is closed.
// DIR/pool.json  {"image", "size": [H,W], "mode", "prnu", "sigma",
//                 "candidates": [{"index", "iteration", "psnr", "loss", "gamma"}, ...],
//                 "complete": true}
//
// Plain C++ (no torch, no OpenCV); errors are IoError (npy.h) naming the file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dippas/io/atomic_file.h"

namespace dippas {

// Where the frames wait until Close().
enum class PoolSpool {
  kTemporary,  // a temporary file, removed if the run does not finish
  kResumable,  // DIR/.pool.npy.partial, kept when the run stops: a checkpointed run resumes it
};

// Streams candidates to disk, one frame at a time (memory O(1 image)). Nothing appears under
// the final names before Close(): a crashed or abandoned run leaves no half-written pool.
class PoolWriter {
 public:
  static constexpr const char* kPartialName = ".pool.npy.partial";

  // Creates `dir` if needed with mode 0700 (the pool holds near-copies of the user's photo) and
  // opens its spool inside it. `meta` holds "image", "mode", "prnu", "sigma"; "size",
  // "candidates" and "complete" are added by the writer. A kResumable spool is opened as it is
  // (a fresh run overwrites it from the first frame; Close() cuts what is left beyond).
  PoolWriter(const std::string& dir, int64_t height, int64_t width, nlohmann::json meta,
             PoolSpool spool = PoolSpool::kTemporary);
  PoolWriter(const PoolWriter&) = delete;
  PoolWriter& operator=(const PoolWriter&) = delete;
  // Removes the temporary files if Close() was not reached.
  ~PoolWriter();

  // Appends one candidate: H*W*3 bytes, RGB, HWC. `record` holds "iteration", "psnr", "loss",
  // "gamma"; "index" is added. IoError naming the file on a write error (e.g. disk full).
  void Append(const uint8_t* rgb_hwc, const nlohmann::json& record);

  // Fixes N in the header, fsyncs, writes pool.json with "complete": true, renames pool.npy
  // then pool.json into place (an older pool.json is removed first, so a reader never pairs
  // an old index with new frames). Further Append/Close calls throw std::logic_error.
  void Close();

  // Like Close(), but the two finished temporaries are handed to `outputs`, which renames them
  // with the run's other outputs in one commit (the writer is closed afterwards).
  void StageInto(OutputSet& outputs);

  int64_t count() const { return count_; }

  // kResumable: flushes the frames so far to disk (they outlive a crash) and returns what
  // ResumeFrom needs: {"count", "candidates"}. Saved with a loop checkpoint.
  nlohmann::json ResumeState();

  // kResumable: continues from an earlier writer's ResumeState() in the same folder: the frames
  // after its count are dropped (the resumed loop makes them again). IoError naming the spool
  // if it holds fewer frames or another size; std::invalid_argument on a malformed state.
  void ResumeFrom(const nlohmann::json& state);

 private:
  void Cleanup() noexcept;
  void FinishTemporaries();  // fixes N, fsyncs pool.npy, writes the pool.json temporary

  std::string dir_, npy_path_, json_path_;  // final names
  std::string npy_tmp_, json_tmp_;          // temporaries inside dir_ (empty once renamed)
  int fd_ = -1;                             // open temporary of pool.npy
  int npy_slot_ = -1, json_slot_ = -1;      // their RegisterTemporaryFile handles
  int64_t height_ = 0, width_ = 0, count_ = 0;
  size_t header_size_ = 0;  // bytes before the first frame
  nlohmann::json meta_;     // pool.json being built
  PoolSpool spool_ = PoolSpool::kTemporary;
  bool created_ = false;  // the spool did not exist before this writer
  bool closed_ = false;
};

// Reads a pool written by PoolWriter (or anything writing the same format). The constructor
// checks everything that can be checked without reading the frames; Read() loads one frame.
class PoolReader {
 public:
  // IoError naming the file: missing pool.json or pool.npy, invalid JSON, pool not complete,
  // wrong dtype/shape/order, N or size disagreeing between the two files, truncated data.
  explicit PoolReader(const std::string& dir);

  int64_t count() const { return count_; }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  const nlohmann::json& index() const { return index_; }  // the whole pool.json
  const std::string& npy_path() const { return npy_path_; }
  const std::string& json_path() const { return json_path_; }

  // Candidate i (0 ≤ i < count): H*W*3 bytes, RGB, HWC; reads only that frame.
  std::vector<uint8_t> Read(int64_t i) const;

 private:
  std::string npy_path_, json_path_;
  nlohmann::json index_;
  int64_t count_ = 0, height_ = 0, width_ = 0;
  size_t data_offset_ = 0;
};

}  // namespace dippas
