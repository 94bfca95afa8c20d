#include "dippas/assembly/assembly.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "dippas/prnu/residual.h"

namespace dippas {
namespace {

std::string Shape(const torch::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + ")";
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void AssemblyOptions::Check(int64_t height, int64_t width) const {
  if (block_size < 1) {
    throw std::invalid_argument("assembly block_size (B) must be >= 1, got " +
                                std::to_string(block_size));
  }
  if (block_size > std::max(height, width)) {
    throw std::invalid_argument("assembly block_size (B) = " + std::to_string(block_size) +
                                " exceeds the image size " + std::to_string(height) + "x" +
                                std::to_string(width));
  }
  if (top < 1) {
    throw std::invalid_argument("assembly top (L) must be >= 1, got " + std::to_string(top));
  }
}

double AssemblyKey(double rho, bool by_abs) {
  // Undefined ρ carries no evidence either way: after every defined one.
  if (std::isnan(rho)) return std::numeric_limits<double>::infinity();
  if (by_abs) return std::fabs(rho);
  // Small negative ρ (trace slightly anti-correlated) first; |ρ| ≤ 1 < 2 + ρ keeps every
  // negative ahead of every non-negative.
  return rho < 0 ? -rho : 2 + rho;
}

BlockAssembler::BlockAssembler(torch::Tensor pattern, AssemblyOptions options) : options_(options) {
  if (!pattern.defined() || pattern.dim() != 2) {
    throw std::invalid_argument("assembly pattern P must be (H,W), got " +
                                (pattern.defined() ? Shape(pattern) : std::string("undefined")));
  }
  height_ = pattern.size(0);
  width_ = pattern.size(1);
  options_.Check(height_, width_);
  pattern_ = pattern.to(torch::kFloat64);
  block_rows_ = CeilDiv(height_, options_.block_size);
  block_cols_ = CeilDiv(width_, options_.block_size);
  entries_.resize(block_rows_ * block_cols_);
  for (auto& e : entries_) e.reserve(options_.top);
  // slots_ waits for the first Add: constructing several assemblers stays cheap.
}

void BlockAssembler::Add(const torch::Tensor& candidate, int64_t iteration) {
  auto c = candidate.to(pattern_.device(), torch::kFloat32);
  ResidualOptions ro;
  ro.sigma = options_.sigma;
  (void)AddWithResidual(c, Residual(c, ro), iteration);
}

torch::Tensor BlockAssembler::BlockSums(const torch::Tensor& candidate,
                                        const torch::Tensor& residual) const {
  if (candidate.dim() != 3 || candidate.size(0) != 3 || candidate.size(1) != height_ ||
      candidate.size(2) != width_) {
    throw std::invalid_argument("assembly candidate must be (3," + std::to_string(height_) + "," +
                                std::to_string(width_) + "), got " + Shape(candidate));
  }
  if (residual.dim() != 2 || residual.size(0) != height_ || residual.size(1) != width_) {
    throw std::invalid_argument("assembly residual must be (" + std::to_string(height_) + "," +
                                std::to_string(width_) + "), got " + Shape(residual));
  }
  const auto dev = pattern_.device();
  auto w = residual.to(dev, torch::kFloat64);
  auto b = ToGray(candidate.to(dev, torch::kFloat64)) * pattern_;  // G_m·P
  // The three sums of the NCC per block at once: zero padding to whole blocks adds nothing to
  // them, so partial edge blocks come out right.
  const int64_t bs = options_.block_size;
  auto sums = torch::stack({w * b, w.square(), b.square()});
  sums =
      torch::constant_pad_nd(sums, {0, block_cols_ * bs - width_, 0, block_rows_ * bs - height_});
  return sums.reshape({3, block_rows_, bs, block_cols_, bs}).sum({2, 4});
}

namespace {

// NCC = Σ W·G·P / (√Σ W² · √Σ (G·P)²) from the sums stacked on dim 0; NaN where undefined.
torch::Tensor NccFromSums(const torch::Tensor& sums) {
  auto num = sums[0];
  auto den = sums[1].sqrt() * sums[2].sqrt();
  return torch::where(den > 0, num / den,
                      torch::full_like(num, std::numeric_limits<double>::quiet_NaN()));
}

}  // namespace

torch::Tensor BlockAssembler::BlockNcc(const torch::Tensor& candidate,
                                       const torch::Tensor& residual) const {
  return NccFromSums(BlockSums(candidate, residual));
}

double BlockAssembler::ImageNcc(const torch::Tensor& candidate, const torch::Tensor& residual) const {
  return NccFromSums(BlockSums(candidate, residual).sum({1, 2})).item<double>();
}

double BlockAssembler::AddWithResidual(const torch::Tensor& candidate, const torch::Tensor& residual,
                                       int64_t iteration) {
  const auto sums = BlockSums(candidate, residual);
  const int64_t nb = block_rows_ * block_cols_;
  // Block ρ and the whole-image NCC (its sums are the blocks' sums added up) in one read-back.
  auto host = torch::cat({NccFromSums(sums).flatten(), NccFromSums(sums.sum({1, 2})).reshape({1})})
                  .cpu()
                  .contiguous();
  const double* rho = host.data_ptr<double>();
  const int64_t top = options_.top;
  // (key, iteration) lexicographic; equal pairs keep the entry added first.
  auto better = [](const Entry& a, const Entry& b) {
    return a.key < b.key || (a.key == b.key && a.iteration < b.iteration);
  };
  // Which block goes to which slot: decided on the host, copied in one batch below.
  std::vector<int64_t> dst, src;
  for (int64_t blk = 0; blk < nb; ++blk) {
    const Entry e{AssemblyKey(rho[blk], options_.order_by_abs), iteration, rho[blk]};
    auto& kept = entries_[static_cast<size_t>(blk)];
    int64_t slot;
    if (static_cast<int64_t>(kept.size()) < top) {
      slot = static_cast<int64_t>(kept.size());
      kept.push_back(e);
    } else {
      // Replace the current worst of the L kept, if the newcomer beats it.
      auto worst = std::max_element(kept.begin(), kept.end(), better);
      if (!better(e, *worst)) continue;
      *worst = e;
      slot = worst - kept.begin();
    }
    dst.push_back(slot * nb + blk);
    src.push_back(blk);
  }
  ++count_;
  if (!dst.empty()) {
    const int64_t bs = options_.block_size;
    auto cand = candidate.to(pattern_.device(), torch::kFloat32);
    if (!slots_.defined()) slots_ = torch::zeros({top, nb, 3, bs, bs}, cand.options());
    // (3,H,W) → zero-padded (blocks, 3, B, B), then every won block into its slot at once.
    auto blocks = torch::constant_pad_nd(cand, {0, block_cols_ * bs - width_, 0, block_rows_ * bs - height_})
                      .reshape({3, block_rows_, bs, block_cols_, bs})
                      .permute({1, 3, 0, 2, 4})
                      .reshape({nb, 3, bs, bs});
    const auto n = static_cast<int64_t>(dst.size());
    auto dst_idx = torch::from_blob(dst.data(), {n}, torch::kInt64).to(cand.device());
    auto src_idx = torch::from_blob(src.data(), {n}, torch::kInt64).to(cand.device());
    slots_.view({top * nb, 3, bs, bs}).index_copy_(0, dst_idx, blocks.index_select(0, src_idx));
  }
  return rho[nb];
}

int64_t BlockAssembler::stored_entries() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += static_cast<int64_t>(e.size());
  return n;
}

BlockAssembler::State BlockAssembler::GetState() const {
  const int64_t nb = block_rows_ * block_cols_, top = options_.top;
  State st;
  st.count = count_;
  st.meta = torch::zeros({nb, top, 3}, torch::kFloat64);
  st.kept = torch::zeros({nb}, torch::kInt64);
  auto meta = st.meta.accessor<double, 3>();
  auto kept = st.kept.accessor<int64_t, 1>();
  for (int64_t b = 0; b < nb; ++b) {
    const auto& entries = entries_[static_cast<size_t>(b)];
    kept[b] = static_cast<int64_t>(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto j = static_cast<int64_t>(i);
      meta[b][j][0] = entries[i].key;
      meta[b][j][1] = static_cast<double>(entries[i].iteration);  // exact below 2^53
      meta[b][j][2] = entries[i].rho;
    }
  }
  if (slots_.defined()) st.slots = slots_.to(torch::kCPU);
  return st;
}

void BlockAssembler::SetState(const State& st) {
  const int64_t nb = block_rows_ * block_cols_, top = options_.top, bs = options_.block_size;
  auto shape_is = [](const torch::Tensor& t, std::vector<int64_t> s) {
    return t.defined() && t.sizes().vec() == s;
  };
  if (st.count < 0 || !shape_is(st.meta, {nb, top, 3}) || !shape_is(st.kept, {nb}) ||
      (st.slots.defined() && !shape_is(st.slots, {top, nb, 3, bs, bs}))) {
    throw std::invalid_argument("assembly state of another size or block settings");
  }
  const auto meta_t = st.meta.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto kept_t = st.kept.to(torch::kCPU, torch::kInt64).contiguous();
  auto meta = meta_t.accessor<double, 3>();
  auto kept = kept_t.accessor<int64_t, 1>();
  for (int64_t b = 0; b < nb; ++b) {
    if (kept[b] < 0 || kept[b] > top)
      throw std::invalid_argument("assembly state: bad entry count");
    auto& entries = entries_[static_cast<size_t>(b)];
    entries.clear();
    for (int64_t j = 0; j < kept[b]; ++j) {
      entries.push_back(Entry{meta[b][j][0], static_cast<int64_t>(meta[b][j][1]), meta[b][j][2]});
    }
  }
  count_ = st.count;
  slots_ = st.slots.defined() ? st.slots.to(pattern_.device(), torch::kFloat32).contiguous()
                              : torch::Tensor();
}

BlockAssembler::Result BlockAssembler::Finish() const {
  if (count_ == 0) throw std::logic_error("assembly: Finish() before any candidate was added");
  const int64_t top = options_.top, bs = options_.block_size;
  Result out;
  out.kept = torch::empty({block_rows_, block_cols_}, torch::kInt64);
  out.mean_rho = torch::empty({block_rows_, block_cols_}, torch::kFloat64);
  auto kept_acc = out.kept.accessor<int64_t, 2>();
  auto rho_acc = out.mean_rho.accessor<double, 2>();
  for (int64_t r = 0; r < block_rows_; ++r) {
    for (int64_t c = 0; c < block_cols_; ++c) {
      const auto& kept = entries_[r * block_cols_ + c];
      kept_acc[r][c] = static_cast<int64_t>(kept.size());
      // Metrics want the mean of the defined ρ; NaN only if none is defined.
      double sum = 0;
      int64_t n = 0;
      for (const auto& e : kept) {
        if (std::isnan(e.rho)) continue;
        sum += e.rho;
        ++n;
      }
      rho_acc[r][c] = n ? sum / n : std::numeric_limits<double>::quiet_NaN();
    }
  }
  const int64_t nb = block_rows_ * block_cols_;
  auto kept_b = out.kept.to(slots_.device()).reshape({nb, 1, 1, 1}).to(torch::kFloat64);
  // Slot s of a block is filled iff s < kept; sum slot by slot to stay at O(1) extra images.
  auto sum = torch::zeros({nb, 3, bs, bs}, slots_.options().dtype(torch::kFloat64));
  for (int64_t s = 0; s < top; ++s) {
    sum += torch::where(kept_b > s, slots_[s].to(torch::kFloat64), torch::zeros_like(sum));
  }
  // Round half away from zero (as std::round, like the image writer), then to 8 bits.
  auto blocks = torch::floor(sum / kept_b + 0.5).clamp(0, 255).to(torch::kFloat32);
  // (blocks, 3, B, B) → (3, H, W): the inverse of the layout in AddWithResidual, cropped.
  out.image = blocks.reshape({block_rows_, block_cols_, 3, bs, bs})
                  .permute({2, 0, 3, 1, 4})
                  .reshape({3, block_rows_ * bs, block_cols_ * bs})
                  .narrow(1, 0, height_)
                  .narrow(2, 0, width_)
                  .contiguous();
  return out;
}

torch::Tensor SelectionPattern(const torch::Tensor& pattern, const torch::Tensor& residual,
                               double w) {
  if (!pattern.defined() || !residual.defined() || pattern.dim() != 2 ||
      pattern.sizes() != residual.sizes()) {
    throw std::invalid_argument("selection pattern: P and the residual W must be (H,W) alike");
  }
  auto normalized = [](const torch::Tensor& t, const char* name) {
    const auto d = t.to(torch::kFloat64);
    const double sd = d.std(/*unbiased=*/false).item<double>();
    if (!(sd > 0) || !std::isfinite(sd))
      throw std::invalid_argument(std::string("selection pattern: ") + name +
                                  " is constant or not finite");
    return d / sd;
  };
  return (normalized(pattern, "P") + w * normalized(residual, "the residual W"))
      .to(torch::kFloat32);
}

}  // namespace dippas
