#include "dippas/util/math_mode.h"

namespace dippas {

void SetMatmulPrecision(at::Float32MatmulPrecision precision) {
  switch (precision) {
    case at::Float32MatmulPrecision::HIGHEST:
      at::globalContext().setFloat32MatmulPrecision("highest");
      return;
    case at::Float32MatmulPrecision::HIGH:
      at::globalContext().setFloat32MatmulPrecision("high");
      return;
    case at::Float32MatmulPrecision::MEDIUM:
      at::globalContext().setFloat32MatmulPrecision("medium");
      return;
  }
}

NoTf32Guard::NoTf32Guard(bool engage) : engaged_(engage) {
  if (!engaged_) return;
  auto& ctx = at::globalContext();
  cudnn_tf32_ = ctx.allowTF32CuDNN();
  // The precision, not allowTF32CuBLAS(): "medium" and "high" both read as "TF32 allowed" and
  // must come back as they were.
  matmul_ = ctx.float32MatmulPrecision();
  ctx.setAllowTF32CuDNN(false);
  SetMatmulPrecision(at::Float32MatmulPrecision::HIGHEST);
}

NoTf32Guard::~NoTf32Guard() {
  if (!engaged_) return;
  auto& ctx = at::globalContext();
  ctx.setAllowTF32CuDNN(cudnn_tf32_);
  SetMatmulPrecision(matmul_);
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
