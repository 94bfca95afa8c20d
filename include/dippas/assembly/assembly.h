// DIPPAS assembly (paper §3.3, SPEC §6): per B×B block, average the L pool candidates whose
// block NCC ρ with the reference pattern P is closest to "no trace" (small negative first), and
// stitch the blocks into the anonymized image Î.
//
// The selection is a per-block top-L by a scalar key, so BlockAssembler runs online: candidates
// are added as the DIP produces them and only the L best block pixels per block are kept (an
// (L,3,H,W) buffer), never the whole pool.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace dippas {

struct AssemblyOptions {
  int64_t block_size = 64;  // B: side of the square blocks (SPEC §6)
  int64_t top = 10;         // L: candidates averaged per block
  double sigma = 3.0;       // σ of the residual (SPEC §2)
  bool order_by_abs = false;  // rank by |ρ| whatever its sign (false: SPEC §6's negative-first)

  // Throws std::invalid_argument naming the option: B < 1, B > max(H,W), L < 1.
  void Check(int64_t height, int64_t width) const;
};

// Sort key of a block NCC ρ (smaller is better): ρ < 0 → |ρ|, ρ ≥ 0 → 2 + ρ, NaN → +inf; with
// by_abs, |ρ| for either sign. Ties are broken by iteration (earlier first) by the caller.
double AssemblyKey(double rho, bool by_abs = false);

class BlockAssembler {
 public:
  // `pattern` is P (H,W), the reference PRNU pattern the candidates are scored against.
  BlockAssembler(torch::Tensor pattern, AssemblyOptions options);

  // Adds pool candidate m: an 8-bit RGB image as (3,H,W) with values 0..255 (any dtype).
  void Add(const torch::Tensor& candidate, int64_t iteration);
  // Same with W_m = Residual(candidate, σ) (H,W) precomputed, so that several assemblers
  // (other B or L) can share one residual. Returns the whole-image NCC(W_m, G_m·P) (NaN when
  // undefined), which the NCC's sums over the blocks give at no extra pass or read-back.
  double AddWithResidual(const torch::Tensor& candidate, const torch::Tensor& residual,
                         int64_t iteration);

  // ρ_mb = NCC(W_m[b], G_m[b]·P[b]) for every block b: (rows of blocks, cols of blocks), double,
  // NaN where undefined.
  torch::Tensor BlockNcc(const torch::Tensor& candidate, const torch::Tensor& residual) const;
  // The NCC's three sums per block, Σ W·G·P, Σ W², Σ (G·P)²: (3, rows of blocks, cols of blocks).
  torch::Tensor BlockSums(const torch::Tensor& candidate, const torch::Tensor& residual) const;
  // NCC(W_m, G_m·P) over the whole image from the block sums (one host read-back).
  double ImageNcc(const torch::Tensor& candidate, const torch::Tensor& residual) const;

  int64_t count() const { return count_; }  // candidates added
  // Block entries currently held, at most L per block (the memory bound).
  int64_t stored_entries() const;
  int64_t block_rows() const { return block_rows_; }
  int64_t block_cols() const { return block_cols_; }

  struct Result {
    torch::Tensor image;     // Î (3,H,W) float32 with integer values 0..255
    torch::Tensor kept;      // (nbr,nbc) int64: candidates averaged per block (≤ L)
    torch::Tensor mean_rho;  // (nbr,nbc) double: mean ρ of the kept entries (NaNs skipped)
  };
  // Averages the kept blocks; throws std::logic_error when nothing was added.
  Result Finish() const;

  // The online state, for a checkpoint of the loop: `meta` (blocks, L, 3) float64 holds each
  // kept entry's key, iteration and ρ (rows past `kept` unused), `kept` (blocks) int64 counts
  // them, `slots` holds their pixels (undefined until a block was won).
  struct State {
    int64_t count = 0;
    torch::Tensor meta, kept, slots;
  };
  State GetState() const;
  // Restores GetState() of an assembler of the same size and options; std::invalid_argument
  // when the shapes do not match.
  void SetState(const State& state);

 private:
  // One kept candidate block: its sort key, iteration and ρ; pixels live in slots_.
  struct Entry {
    double key = 0;
    int64_t iteration = 0;
    double rho = 0;
  };

  torch::Tensor pattern_;  // P (H,W) float64
  AssemblyOptions options_;
  int64_t height_ = 0, width_ = 0, block_rows_ = 0, block_cols_ = 0;
  int64_t count_ = 0;
  // entries_[b] holds the entries of block b; entry s of block b has its pixels in slots_[s][b].
  std::vector<std::vector<Entry>> entries_;
  // (L, blocks, 3, B, B) float32, block-major so that one index_copy_ stores all the blocks a
  // candidate wins (partial edge blocks zero-padded); allocated on the first Add.
  torch::Tensor slots_;
};

// The P the blocks are ranked by with DipOptions::select_residual w: P/σ(P) + w·W/σ(W), W the
// photo's own residual (both (H,W); σ over the whole image, so the tiles of a photo share one
// weighting). float32. std::invalid_argument when P or W is constant or not finite.
torch::Tensor SelectionPattern(const torch::Tensor& pattern, const torch::Tensor& residual,
                               double w);

}  // namespace dippas
