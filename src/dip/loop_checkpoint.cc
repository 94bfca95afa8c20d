#include "dippas/dip/loop_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <filesystem>
#include <mutex>
#include <utility>
#include <vector>

#include "dippas/assembly/assembly.h"
#include "dippas/dip/amsgrad.h"
#include "dippas/dip/checkpoint.h"
#include "dippas/dip/network.h"

namespace dippas {
namespace {

constexpr int64_t kCheckpointVersion = 2;  // 2: the plateau rule's state
constexpr int64_t kScalarCount = 10;

std::vector<std::pair<std::string, at::Generator>> Generators(const LoopModules& m) {
  std::vector<std::pair<std::string, at::Generator>> g = {
      {"rng.cpu", m.cpu_generator.defined()
                      ? m.cpu_generator
                      : at::globalContext().defaultGenerator(c10::DeviceType::CPU)}};
  if (m.cuda) g.emplace_back("rng.cuda", at::globalContext().defaultGenerator(m.device));
  return g;
}

}  // namespace

void SaveLoopCheckpoint(const std::string& path, const std::string& key, int64_t iterations,
                        const LoopModules& m, const LoopScalars& s,
                        const torch::Tensor& best_candidate, const std::string& caller_blob) {
  TensorMap t;
  t["version"] = torch::full({1}, kCheckpointVersion, torch::kInt64);
  t["key"] = StringTensor(key);
  t["iteration"] = torch::full({1}, iterations, torch::kInt64);
  t["threads"] = torch::full({1}, static_cast<int64_t>(at::get_num_threads()), torch::kInt64);
  const FlatAmsGrad::State a = m.adam->GetState();
  t["adam.step"] = torch::full({1}, a.step, torch::kInt64);
  t["adam.params"] = a.params;  // φ and γ
  t["adam.exp_avg"] = a.exp_avg;
  t["adam.exp_avg_sq"] = a.exp_avg_sq;
  t["adam.max_exp_avg_sq"] = a.max_exp_avg_sq;
  for (const auto& b : m.net->named_buffers()) t["buffer." + b.key()] = b.value();  // BatchNorm
  for (auto& [name, gen] : Generators(m)) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    t[name] = gen.get_state();
  }
  const BlockAssembler::State as = m.assembler->GetState();
  t["assembly.count"] = torch::full({1}, as.count, torch::kInt64);
  t["assembly.meta"] = as.meta;
  t["assembly.kept"] = as.kept;
  if (as.slots.defined()) t["assembly.slots"] = as.slots;
  t["loop.scalars"] = torch::tensor(
      {static_cast<double>(s.pool_size), s.best_psnr, s.fallback_psnr, s.best_key,
       s.best_ncc ? *s.best_ncc : 0.0, s.best_ncc ? 1.0 : 0.0, s.gamma, s.plateau[0], s.plateau[1],
       s.plateau[2]},
      torch::kFloat64);
  if (best_candidate.defined()) t["loop.best_candidate"] = best_candidate;
  t["caller"] = StringTensor(caller_blob);
  SaveTensorMap(path, t);
}

std::optional<LoopResume> LoadLoopCheckpoint(const std::string& path, const std::string& key,
                                             int64_t max_iterations, const LoopModules& m) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return std::nullopt;
  std::vector<std::string> required = {"version",       "key",
                                       "iteration",     "threads",
                                       "adam.step",     "adam.params",
                                       "adam.exp_avg",  "adam.exp_avg_sq",
                                       "adam.max_exp_avg_sq", "assembly.count",
                                       "assembly.meta", "assembly.kept",
                                       "loop.scalars",  "caller"};
  for (const auto& b : m.net->named_buffers()) required.push_back("buffer." + b.key());
  for (const auto& g : Generators(m)) required.push_back(g.first);
  const TensorMap t = LoadTensorMap(path, required, {"assembly.slots", "loop.best_candidate"});
  if (t.at("version").item<int64_t>() != kCheckpointVersion) {
    throw CheckpointError(path + ": checkpoint of another dippas version");
  }
  if (TensorString(t.at("key")) != key) {
    throw CheckpointError(path + ": checkpoint of another run (other inputs or settings)");
  }
  LoopResume r;
  r.iterations = t.at("iteration").item<int64_t>();
  if (r.iterations < 0 || r.iterations >= max_iterations)
    throw CheckpointError(path + ": iteration count out of range");
  const auto scalars = t.at("loop.scalars").to(torch::kFloat64).contiguous();
  if (scalars.numel() != kScalarCount) throw CheckpointError(path + ": corrupt loop state");
  try {
    torch::NoGradGuard no_grad;
    FlatAmsGrad::State a;
    a.step = t.at("adam.step").item<int64_t>();
    a.params = t.at("adam.params").to(m.device);
    a.exp_avg = t.at("adam.exp_avg").to(m.device);
    a.exp_avg_sq = t.at("adam.exp_avg_sq").to(m.device);
    a.max_exp_avg_sq = t.at("adam.max_exp_avg_sq").to(m.device);
    m.adam->SetState(a);
    for (auto& b : m.net->named_buffers()) {
      const auto& saved = t.at("buffer." + b.key());
      if (saved.sizes() != b.value().sizes())
        throw std::invalid_argument("BatchNorm buffer of another size");
      b.value().copy_(saved);
    }
    BlockAssembler::State as;
    as.count = t.at("assembly.count").item<int64_t>();
    as.meta = t.at("assembly.meta");
    as.kept = t.at("assembly.kept");
    if (t.count("assembly.slots")) as.slots = t.at("assembly.slots");
    m.assembler->SetState(as);
    for (auto& [name, gen] : Generators(m)) {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(t.at(name));
    }
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw CheckpointError(path + ": checkpoint does not fit this run (" +
                          why.substr(0, why.find('\n')) + ")");
  }
  const double* sc = scalars.data_ptr<double>();
  r.scalars.pool_size = static_cast<int64_t>(sc[0]);
  r.scalars.best_psnr = sc[1];
  r.scalars.fallback_psnr = sc[2];
  r.scalars.best_key = sc[3];
  if (sc[5] != 0) r.scalars.best_ncc = sc[4];
  r.scalars.gamma = sc[6];
  r.scalars.plateau = {sc[7], sc[8], sc[9]};
  if (t.count("loop.best_candidate")) r.best_candidate = t.at("loop.best_candidate").to(m.device);
  r.threads = t.at("threads").item<int64_t>();
  r.caller_blob = TensorString(t.at("caller"));
  return r;
}

}  // namespace dippas
