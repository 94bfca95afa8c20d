// FlatAmsGrad against LibTorch's own torch::optim::Adam(amsgrad=true): the same small network,
// the same data, 20 steps, the parameters compared after every step.
#include <torch/cuda.h>
#include <torch/torch.h>

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

}  // namespace
}  // namespace dippas
