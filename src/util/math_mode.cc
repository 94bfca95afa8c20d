#include "dippas/util/math_mode.h"

namespace dippas {

NoTf32Guard::NoTf32Guard(bool engage) : engaged_(engage) {
  if (!engaged_) return;
  auto& ctx = at::globalContext();
  cudnn_tf32_ = ctx.allowTF32CuDNN();
  // The precision, not allowTF32CuBLAS(): "medium" and "high" both read as "TF32 allowed" and
  // must come back as they were.
  matmul_ = ctx.float32MatmulPrecision();
  ctx.setAllowTF32CuDNN(false);
  ctx.setFloat32MatmulPrecision(at::Float32MatmulPrecision::HIGHEST);
}

NoTf32Guard::~NoTf32Guard() {
  if (!engaged_) return;
  auto& ctx = at::globalContext();
  ctx.setAllowTF32CuDNN(cudnn_tf32_);
  ctx.setFloat32MatmulPrecision(matmul_);
}

CudnnBenchmarkGuard::CudnnBenchmarkGuard(bool on, bool engage) : engaged_(engage) {
  if (!engaged_) return;
  previous_ = at::globalContext().benchmarkCuDNN();
  at::globalContext().setBenchmarkCuDNN(on);
}

CudnnBenchmarkGuard::~CudnnBenchmarkGuard() {
  if (engaged_) at::globalContext().setBenchmarkCuDNN(previous_);
}

}  // namespace dippas
