// Process-wide math modes of LibTorch's CUDA backends, set for a scope and restored after.
//
// Ampere and later GPUs may run float32 convolutions (cuDNN) and matmuls (cuBLAS) in TF32, which
// rounds the inputs to a 10-bit mantissa. That is fine for the network, but it would round the
// db4 filter taps and the Wiener filter of the PRNU residual and break its 1e-4 agreement with
// prnu-python, so the residual runs under NoTf32Guard. The flags are globals of at::Context
// (present in CPU builds too, where they change nothing).
#pragma once

#include <ATen/Context.h>

namespace dippas {

// at::Context::setFloat32MatmulPrecision for an enum value, through the string setter that every
// LibTorch version has (2.x dropped the enum overload that 1.13 also offers).
void SetMatmulPrecision(at::Float32MatmulPrecision precision);

// TF32 off in cuDNN and cuBLAS while alive; the previous settings come back on destruction.
// `engage` = false makes it a no-op (callers pass "is this tensor on a GPU?", so that CPU code,
// which may run on several threads, never writes the globals).
class NoTf32Guard {
 public:
  explicit NoTf32Guard(bool engage = true);
  ~NoTf32Guard();
  NoTf32Guard(const NoTf32Guard&) = delete;
  NoTf32Guard& operator=(const NoTf32Guard&) = delete;

 private:
  bool engaged_;
  bool cudnn_tf32_ = false;
  at::Float32MatmulPrecision matmul_ = at::Float32MatmulPrecision::HIGHEST;
};

// cuDNN autotuning (benchmark mode) set to `on` while alive, then restored: the DIP network
// runs the same shapes thousands of times, so the one-off search pays. No-op when !engage.
class CudnnBenchmarkGuard {
 public:
  explicit CudnnBenchmarkGuard(bool on, bool engage = true);
  ~CudnnBenchmarkGuard();
  CudnnBenchmarkGuard(const CudnnBenchmarkGuard&) = delete;
  CudnnBenchmarkGuard& operator=(const CudnnBenchmarkGuard&) = delete;

 private:
  bool engaged_;
  bool previous_ = false;
};

}  // namespace dippas
