// The DIP iteration body (dip/iteration.h) in the form a CUDA graph captures, checked on the
// CPU: after a warm-up it asks for the same allocations every iteration (a cache of freed
// blocks serves them all: what a graph's private memory pool does), its outputs stay in the
// same buffers, it reads nothing back to the host, and it computes what the loop computes.
#include "dippas/dip/iteration.h"

#include <ATen/record_function.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "dippas/dip/amsgrad.h"
#include "dippas/dip/injection.h"
#include "dippas/dip/loop.h"
#include "dippas/dip/network.h"

namespace dippas {
namespace {

// LibTorch's CPU allocations served from a cache of freed blocks of the same size: `fresh`
// counts those the cache could not serve, `trace` the sizes asked for, in order. Never destroyed
// (blocks it handed out may be freed after the test).
class CachingCounter : public c10::Allocator {
 public:
  CachingCounter() { instance_ = this; }
  c10::DataPtr allocate(size_t n) const override {
    auto* self = const_cast<CachingCounter*>(this);
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->trace_.push_back(n);
    void* p = nullptr;
    auto& free = self->free_[n];
    if (!free.empty()) {
      p = free.back();
      free.pop_back();
    } else {
      ++self->fresh_;
      if (posix_memalign(&p, 64, n == 0 ? 1 : n) != 0) throw std::bad_alloc();
      self->sizes_[p] = n;
    }
    // The context is the pointer itself: oneDNN's raw_allocate requires it.
    return {p, p, &Release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &Release; }

  void Install() {
    base_ = c10::GetCPUAllocator();
    c10::SetCPUAllocator(this, ++priority_);
  }
  void Uninstall() { c10::SetCPUAllocator(base_, ++priority_); }
  // Starts a new count; returns the one that ends.
  std::pair<int64_t, std::vector<size_t>> Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    auto r = std::make_pair(fresh_, trace_);
    fresh_ = 0;
    trace_.clear();
    return r;
  }

 private:
  static void Release(void* p) {
    CachingCounter* self = instance_;
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->free_[self->sizes_.at(p)].push_back(p);
  }
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  std::map<void*, size_t> sizes_;
  std::vector<size_t> trace_;
  int64_t fresh_ = 0;
  c10::Allocator* base_ = nullptr;
  static inline CachingCounter* instance_ = nullptr;
  static inline uint8_t priority_ = 100;
};

// Counts the reads of a tensor's value back to the host that the code under test makes itself
// (a synchronisation on a GPU, and a value a captured graph would freeze): item(), is_nonzero
// (a tensor in an `if`), equal, nonzero, called from outside any operator. Reads inside an
// operator are LibTorch's own CPU code paths (its CPU var reads a scalar; its CUDA one does not).
class HostReads {
 public:
  HostReads() {
    handle_ = at::addThreadLocalCallback(
        at::RecordFunctionCallback(&HostReads::OnStart, &HostReads::OnEnd)
            .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
  }
  ~HostReads() { at::removeCallback(handle_); }
  static int64_t count() { return count_.load(); }
  static void Reset() { count_ = 0; }

 private:
  static std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
    static const char* const kReads[] = {"aten::item", "aten::_local_scalar_dense",
                                         "aten::is_nonzero", "aten::equal", "aten::nonzero"};
    if (depth_ == 0) {
      for (const char* name : kReads)
        if (std::strcmp(fn.name(), name) == 0) ++count_;
    }
    ++depth_;
    return nullptr;
  }
  static void OnEnd(const at::RecordFunction&, at::ObserverContext*) { --depth_; }
  at::CallbackHandle handle_;
  static inline std::atomic<int64_t> count_{0};
  static inline thread_local int depth_ = 0;
};

std::pair<torch::Tensor, torch::Tensor> ImageAndPattern() {
  torch::manual_seed(7);
  auto image = torch::rand({3, 64, 64}) * 200 + 20;
  auto pattern = torch::randn({64, 64});
  return {image, pattern};
}

struct Parts {
  MultiResUNet net{nullptr};
  PrnuInjection injection{nullptr};
  std::unique_ptr<FlatAmsGrad> adam;
  DipIterationParts parts;
  DipOptions options;
};

// The smoke test's network on a 64×64 image, λ·ρ² on, the optimizer's state on the "device".
std::unique_ptr<Parts> Make(bool device_state) {
  auto p = std::make_unique<Parts>();
  DipOptions& o = p->options;
  o.input_depth = 8;
  o.filters = {8, 16, 32};
  o.skips = {8, 16};
  o.lr = 0.01;
  o.prnu_weight = 0.5;
  o.prnu_block = 32;
  const auto [image, pattern] = ImageAndPattern();
  // RunDip's draws with seed 5: z, then the network's weights.
  torch::manual_seed(5);
  p->parts.z = torch::randn({1, o.input_depth, 64, 64}).mul_(o.input_noise_std);
  p->net = MultiResUNet(ToNetworkOptions(o));
  p->injection = PrnuInjection(pattern, 1.0);
  std::vector<torch::Tensor> params = p->net->parameters();
  params.push_back(p->injection->gamma);
  AmsGradOptions a;
  a.lr = o.lr;
  a.device_state = device_state;
  p->adam = std::make_unique<FlatAmsGrad>(params, a);
  p->parts.net = p->net.get();
  p->parts.injection = p->injection.get();
  p->parts.adam = p->adam.get();
  p->parts.target = (image / 255.0).unsqueeze(0);
  p->parts.target8 = image.round().clamp(0, 255);
  p->parts.pattern = pattern;
  p->parts.psnr_box = {16, 16, 32, 32};
  p->parts.generator = CopyOfDefaultCpuGenerator();
  return p;
}

TEST(DipIteration, AllocationFreeAfterWarmUp) {
  auto p = Make(/*device_state=*/true);
  DipIteration body(p->parts, p->options);
  // Never destroyed: blocks it handed out may come back after the test, and the ones it keeps
  // stay reachable for the leak checker.
  static CachingCounter& counter = *new CachingCounter;
  const void* candidate = body.candidate(0).data_ptr();
  const void* scalars = body.scalars(1).data_ptr();
  const void* z_t = body.perturbed().data_ptr();
  const void* params = p->adam->flat_params().data_ptr();
  counter.Install();
  std::vector<std::pair<int64_t, std::vector<size_t>>> per_iteration;
  try {
    for (int it = 0; it < 8; ++it) {
      body.Run(it % 2);
      per_iteration.push_back(counter.Take());
    }
  } catch (...) {
    counter.Uninstall();
    throw;
  }
  counter.Uninstall();
  // The first two iterations (one per slot) warm the cache up; after them nothing is new.
  EXPECT_GT(per_iteration[0].first, 0) << "the counter saw no allocation at all";
  for (size_t it = 2; it < per_iteration.size(); ++it) {
    EXPECT_EQ(per_iteration[it].first, 0) << "new allocations in iteration " << it + 1;
    EXPECT_EQ(per_iteration[it].second, per_iteration[it - 1].second)
        << "iteration " << it + 1 << " asks for other sizes than the one before";
  }
  EXPECT_EQ(body.candidate(0).data_ptr(), candidate);
  EXPECT_EQ(body.scalars(1).data_ptr(), scalars);
  EXPECT_EQ(body.perturbed().data_ptr(), z_t);
  EXPECT_EQ(p->adam->flat_params().data_ptr(), params);
  EXPECT_EQ(p->adam->steps(), 8);
}

TEST(DipIteration, ReadsNothingBackToTheHost) {
  for (const bool device_state : {true, false}) {
    auto p = Make(device_state);
    DipIteration body(p->parts, p->options);
    body.Run(0);  // warm-up
    const HostReads reads;
    HostReads::Reset();
    for (int it = 1; it <= 4; ++it) body.Run(it % 2);
    EXPECT_EQ(HostReads::count(), 0) << "device_state " << device_state;
    // The counter sees a read where there is one.
    (void)body.scalars(0)[0].item<float>();
    EXPECT_EQ(HostReads::count(), 1) << "the observer missed an item()";
  }
}

// The body's buffers hold what the loop's first iterations give: the same candidate and
// scalars as RunDip's records (PSNR and γ), iteration by iteration.
TEST(DipIteration, WritesWhatTheLoopRecords) {
  auto p = Make(/*device_state=*/false);
  DipIteration body(p->parts, p->options);
  std::vector<std::array<double, 3>> mine;
  for (int it = 0; it < 5; ++it) {
    body.Run(it % 2);
    const auto s = body.scalars(it % 2).to(torch::kFloat64);
    mine.push_back({s[0].item<double>(), s[1].item<double>(), s[2].item<double>()});
    const auto c = body.candidate(it % 2);
    EXPECT_TRUE(torch::equal(c, c.round().clamp(0, 255)));
    // The MSE over the PSNR box, from the candidate, in double.
    const auto& b = p->parts.psnr_box;
    auto crop = [&](const torch::Tensor& t) {
      return t.slice(1, b[0], b[0] + b[2]).slice(2, b[1], b[1] + b[3]).to(torch::kFloat64);
    };
    const double mse = (crop(c) - crop(p->parts.target8)).square().mean().item<double>();
    EXPECT_NEAR(mine.back()[1], mse, 1e-6 * mse) << "iteration " << it + 1;
  }
  // The same run through the loop: a fresh network from the same seed and draws.
  DipRunOptions run;
  run.dip = p->options;
  run.dip.max_iterations = 5;
  run.dip.psnr_min = 99;
  run.dip.psnr_stop = 99.5;
  run.dip.restarts = 0;
  run.dip.seed = 5;
  run.psnr_box = p->parts.psnr_box;
  std::vector<IterationRecord> records;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& r, int64_t, std::optional<double>) {
    records.push_back(r);
  };
  const auto [image, pattern] = ImageAndPattern();
  (void)RunDip(image, pattern, run, cb);
  ASSERT_EQ(records.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    // One computation twice on one machine: equal.
    EXPECT_EQ(records[i].psnr, 10.0 * std::log10(255.0 * 255.0 / mine[i][1]))
        << "iteration " << i + 1;
    EXPECT_EQ(records[i].loss, mine[i][0]) << "iteration " << i + 1;
    EXPECT_EQ(records[i].gamma, mine[i][2]) << "iteration " << i + 1;
  }
}

}  // namespace
}  // namespace dippas
