// FlatAmsGrad against LibTorch's own torch::optim::Adam(amsgrad=true): the same small network,
// the same data, 20 steps, the parameters compared after every step.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <atomic>
#include <c10/core/CPUAllocator.h>

#include "dippas/dip/amsgrad.h"
#include "test_util.h"

namespace dippas {
namespace {

// Conv + BatchNorm + a 0-dim scale: several shapes, odd sizes (for the flat buffer's padding).
struct SmallNetImpl : torch::nn::Module {
  SmallNetImpl() {
    conv1 =
        register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 5, 3).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(5));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(5, 3, 1)));
    scale = register_parameter("scale", torch::full({}, 0.5));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return conv2(torch::leaky_relu(bn(conv1(x)), 0.2)) * (1 + scale);
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::Tensor scale;
};
TORCH_MODULE(SmallNet);

struct Run {
  SmallNet net;
  torch::Tensor x, y;
};

Run Make(const torch::Device& dev) {
  torch::manual_seed(3);
  Run r{SmallNet(), torch::randn({2, 3, 9, 7}), torch::randn({2, 3, 9, 7})};
  r.net->to(dev);
  r.x = r.x.to(dev);
  r.y = r.y.to(dev);
  return r;
}

torch::Tensor Flat(const SmallNet& net) {
  std::vector<torch::Tensor> v;
  for (const auto& p : net->parameters())
    v.push_back(p.detach().flatten().to(torch::kCPU, torch::kFloat64));
  return torch::cat(v);
}

// Returns max over the steps of max|flat − adam| / max|adam|, and whether every step was equal bit
// for bit.
std::pair<double, bool> Compare(const torch::Device& dev, int steps, double lr) {
  Run a = Make(dev), b = Make(dev);
  EXPECT_TRUE(torch::equal(Flat(a.net), Flat(b.net)));
  torch::optim::Adam adam(a.net->parameters(), torch::optim::AdamOptions(lr).amsgrad(true));
  AmsGradOptions o;
  o.lr = lr;
  FlatAmsGrad flat(b.net->parameters(), o);
  EXPECT_TRUE(torch::equal(Flat(a.net), Flat(b.net)));  // moving into the buffer keeps the values
  double worst = 0;
  bool identical = true;
  for (int i = 0; i < steps; ++i) {
    adam.zero_grad();
    torch::mse_loss(a.net->forward(a.x), a.y).backward();
    adam.step();
    flat.ZeroGrad();
    torch::mse_loss(b.net->forward(b.x), b.y).backward();
    flat.Step();
    const auto pa = Flat(a.net), pb = Flat(b.net);
    worst = std::max(worst, test::RelMaxError(pb, pa));
    identical = identical && torch::equal(pa, pb);
  }
  EXPECT_EQ(flat.steps(), steps);
  // The parameters moved (the comparison is not of two untouched copies).
  EXPECT_GT((Flat(b.net) - Flat(Make(dev).net)).abs().max().item<double>(), 10 * lr);
  return {worst, identical};
}

TEST(FlatAmsGrad, MatchesTorchAdamAmsgradOnCpu) {
  const auto [rel, identical] = Compare(torch::kCPU, 20, 0.01);
  EXPECT_LE(rel, 1e-6);
  // Same element-wise operations in the same order: on a CPU the results agree bit for bit, which
  // keeps the DIP loop's output per seed what it was with torch::optim::Adam.
  EXPECT_TRUE(identical);
}

TEST(FlatAmsGrad, MatchesTorchAdamAmsgradOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA not available: skipped";
  EXPECT_LE(Compare(torch::kCUDA, 20, 0.01).first, 1e-6);
}

TEST(FlatAmsGrad, ParametersAndGradientsLiveInTheFlatBuffers) {
  torch::manual_seed(1);
  SmallNet net;
  FlatAmsGrad opt(net->parameters(), {});
  const auto x = torch::randn({1, 3, 5, 5});
  torch::mse_loss(net->forward(x), torch::zeros({1, 3, 5, 5})).backward();
  // The module's tensors are views of the buffers: their gradients land there, padding stays 0.
  double grad_sum = 0;
  int64_t elements = 0;
  for (const auto& p : net->parameters()) {
    grad_sum += p.grad().abs().sum().item<double>();
    elements += p.numel();
  }
  EXPECT_GT(grad_sum, 0);
  EXPECT_NEAR(opt.flat_grads().abs().sum().item<double>(), grad_sum, 1e-6 * grad_sum);
  EXPECT_GE(opt.flat_params().numel(), elements);
  opt.ZeroGrad();
  for (const auto& p : net->parameters()) EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0);
  // A step writes through to the module's parameters.
  const auto before = Flat(net);
  torch::mse_loss(net->forward(x), torch::zeros({1, 3, 5, 5})).backward();
  opt.Step();
  EXPECT_FALSE(torch::equal(before, Flat(net)));
}

// A checkpoint's round trip: a fresh network and optimizer given the state after 3 steps, then
// stepped 4 more times, end bit for bit where 7 uninterrupted steps do (the moments and the step
// count matter: without them the bias correction and the update differ).
TEST(FlatAmsGrad, StateRoundTripContinuesBitForBit) {
  const torch::Device cpu(torch::kCPU);
  auto a = Make(cpu), b = Make(cpu);  // (`Run` is also a member of the fixture)
  AmsGradOptions o;
  o.lr = 0.01;
  FlatAmsGrad fa(a.net->parameters(), o), fb(b.net->parameters(), o);
  auto step = [](auto& r, FlatAmsGrad& f) {
    f.ZeroGrad();
    torch::mse_loss(r.net->forward(r.x), r.y).backward();
    f.Step();
  };
  for (int i = 0; i < 7; ++i) step(a, fa);
  for (int i = 0; i < 3; ++i) step(b, fb);
  FlatAmsGrad::State saved = fb.GetState();
  saved.params = saved.params.clone();  // as read back from a file
  auto c = Make(cpu);
  for (const auto& buf : b.net->named_buffers())
    c.net->named_buffers()[buf.key()].copy_(buf.value());  // BatchNorm
  FlatAmsGrad fc(c.net->parameters(), o);
  fc.SetState(saved);
  EXPECT_EQ(fc.steps(), 3);
  EXPECT_TRUE(torch::equal(Flat(b.net), Flat(c.net)));
  for (int i = 0; i < 4; ++i) step(c, fc);
  EXPECT_TRUE(torch::equal(Flat(a.net), Flat(c.net)));
  FlatAmsGrad::State bad = saved;
  bad.exp_avg = bad.exp_avg.narrow(0, 0, 3);
  EXPECT_THROW(fc.SetState(bad), std::invalid_argument);
}

TEST(FlatAmsGrad, RejectsMixedOrNonLeafParameters) {
  auto a = torch::zeros({3}, torch::requires_grad());
  auto b = torch::zeros({3}, torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true));
  EXPECT_THROW(FlatAmsGrad({a, b}, {}), std::invalid_argument);
  EXPECT_THROW(FlatAmsGrad({torch::zeros({3})}, {}), std::invalid_argument);
  EXPECT_THROW(FlatAmsGrad({}, {}), std::invalid_argument);
}

// device_state (issue #41: a step a CUDA graph can replay): the step count and the bias
// corrections live in tensors the step updates itself. The same AMSGrad as the host step up to
// float rounding, over 50 steps, on a problem where every parameter has a gradient (a bias
// before BatchNorm has none: Adam moves it by ±lr on the sign of rounding noise, which the last
// bits of any other computation flip); the same state round trip.
TEST(FlatAmsGrad, DeviceStateStepMatchesTheHostStep) {
  torch::manual_seed(4);
  const auto target = torch::randn({3, 40});
  auto make = [] {
    torch::manual_seed(5);
    return std::vector<torch::Tensor>{torch::randn({3, 17}).requires_grad_(),
                                      torch::randn({17, 40}).requires_grad_(),
                                      torch::randn({}).requires_grad_()};
  };
  auto loss = [&](const std::vector<torch::Tensor>& p) {
    return (torch::tanh(p[0].mm(p[1])) * (1 + p[2]) - target).square().mean();
  };
  AmsGradOptions host, device;
  host.lr = device.lr = 0.01;
  device.device_state = true;
  auto pa = make(), pb = make(), pc = make();
  FlatAmsGrad ha(pa, host), db(pb, device);
  for (int i = 0; i < 50; ++i) {
    ha.ZeroGrad();
    loss(pa).backward();
    ha.Step();
    db.ZeroGrad();
    loss(pb).backward();
    db.Step();
    ASSERT_LE(test::RelMaxError(db.flat_params(), ha.flat_params()), 1e-5) << "step " << i + 1;
  }
  EXPECT_GT((ha.flat_params() - FlatAmsGrad(pc, host).flat_params()).abs().max().item<double>(),
            0.1);  // they moved
  EXPECT_EQ(db.steps(), 50);
  // A state saved and restored continues from the same step count.
  auto pd = make();
  FlatAmsGrad dd(pd, device);
  dd.SetState(db.GetState());
  for (auto* opt : {&db, &dd}) {
    opt->ZeroGrad();
    loss(opt == &db ? pb : pd).backward();
    opt->Step();
  }
  EXPECT_TRUE(torch::equal(db.flat_params(), dd.flat_params()));
}

// A CPU allocator that counts: what a step allocates, seen from LibTorch's side.
struct CountingAllocator : c10::Allocator {
  c10::Allocator* base = nullptr;
  std::atomic<int64_t> count{0};
  c10::DataPtr allocate(size_t n) const override {
    const_cast<std::atomic<int64_t>&>(count).fetch_add(1);
    return base->allocate(n);
  }
  c10::DeleterFnPtr raw_deleter() const override { return base->raw_deleter(); }
};

// device_state's step allocates nothing once the first step has run (a CUDA graph's replay may
// not), and changes no host value the kernels read; the host step allocates its scalars' tensors.
TEST(FlatAmsGrad, DeviceStateStepIsAllocationFree) {
  ::dippas::Run r = Make(torch::kCPU);
  AmsGradOptions o;
  o.device_state = true;
  FlatAmsGrad opt(r.net->parameters(), o);
  opt.ZeroGrad();
  torch::mse_loss(r.net->forward(r.x), r.y).backward();
  opt.Step();  // the warm-up
  static CountingAllocator counting;
  counting.base = c10::GetCPUAllocator();
  c10::SetCPUAllocator(&counting, /*priority=*/100);
  const int64_t before = counting.count.load();
  for (int i = 0; i < 10; ++i) opt.Step();
  const int64_t during = counting.count.load() - before;
  c10::SetCPUAllocator(counting.base, /*priority=*/101);
  EXPECT_EQ(during, 0) << "allocations in 10 device-state steps";
}

}  // namespace
}  // namespace dippas
