#include "dippas/dip/checkpoint.h"

#include <torch/serialize.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "dippas/io/atomic_file.h"
#include "dippas/util/fnv.h"

namespace dippas {

namespace {

// The file: this magic line, the FNV-1a 64 hash of the archive as 16 hex digits and a newline,
// then LibTorch's archive. The archive's own checks miss damage in parts of the file, and a
// damaged checkpoint must never resume as a silently different run.
constexpr char kMagic[] = "dippas-checkpoint 1\n";

std::string Digest(const char* data, size_t n) { return FnvHex(Fnv1a(kFnvOffset, data, n)); }

}  // namespace

void SaveTensorMap(const std::string& path, const TensorMap& tensors) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, t] : tensors)
    archive.write(name, t.detach().to(torch::kCPU).contiguous());
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string body = bytes.str();
  WriteFileAtomic(path, kMagic + Digest(body.data(), body.size()) + "\n" + body);
}

TensorMap LoadTensorMap(const std::string& path, const std::vector<std::string>& required,
                        const std::vector<std::string>& optional) {
  torch::serialize::InputArchive archive;
  // Through ReadFileBytes: regular files of bounded size only, errors naming the file.
  const std::string bytes = ReadFileBytes(path);
  const size_t magic = sizeof(kMagic) - 1, head = magic + 17;
  if (bytes.size() < head || bytes.compare(0, magic, kMagic) != 0 || bytes[head - 1] != '\n') {
    throw CheckpointError(path + ": not a readable checkpoint (not a dippas checkpoint file)");
  }
  if (bytes.compare(magic, 16, Digest(bytes.data() + head, bytes.size() - head)) != 0) {
    throw CheckpointError(path +
                          ": not a readable checkpoint (damaged: its checksum does not match)");
  }
  try {
    std::istringstream in(bytes.substr(head));
    archive.load_from(in, torch::kCPU);
  } catch (const std::exception& e) {
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    throw CheckpointError(path + ": not a readable checkpoint (" + why + ")");
  }
  TensorMap out;
  for (const auto& name : required) {
    torch::Tensor t;
    if (!archive.try_read(name, t))
      throw CheckpointError(path + ": not a checkpoint of this kind (no '" + name + "')");
    out[name] = t;
  }
  for (const auto& name : optional) {
    torch::Tensor t;
    if (archive.try_read(name, t)) out[name] = t;
  }
  return out;
}

torch::Tensor StringTensor(const std::string& text) {
  auto t = torch::empty({static_cast<int64_t>(text.size())}, torch::kUInt8);
  if (!text.empty()) std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

std::string TensorString(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
                     static_cast<size_t>(c.numel()));
}

}  // namespace dippas
