// The residual (SPEC §2), NCC and PCE (SPEC §4) of `dippas detect` on plain arrays, without
// LibTorch: the detect command runs in a process that never loads it (its start-up alone cost
// more than the detection of a dozen 512×512 images). Same arithmetic as residual.h and
// detection.h, whose tensor code serves the other commands and devices.
#pragma once

#include <cstdint>
#include <vector>

#include "dippas/io/image.h"
#include "dippas/io/npy.h"
#include "dippas/prnu/pce.h"

namespace dippas {

// W = residual(I, σ) of an image (H×W×C interleaved, 0..255): wavelet noise per channel
// (`levels` db4 levels), gray, zero-mean on each 2×2 sub-lattice, Wiener in the DFT domain with
// σ_w = sample std. float32, H×W.
Array2D ResidualCpu(const Image& image, double sigma, int levels = 4);

// gray(I) with the weights of SPEC §1 (a copy for a one-channel image).
Array2D GrayCpu(const Image& image);

// B = gray·K elementwise in float32 (the PCE's second operand). Sizes must match.
Array2D ProductCpu(const Array2D& gray, const Array2D& k);

// NCC(W, G·K) = Σ W·G·K / (‖W‖·‖G·K‖) in double, no mean removal; NaN when a norm is 0.
double NccCpu(const Array2D& w, const Array2D& gray, const Array2D& k);

// FFT(W − mean W) of a residual, computed once so that one residual serves every fingerprint.
class PceSpectrumCpu {
 public:
  explicit PceSpectrumCpu(const Array2D& w);
  // PCE of W against B = G·K (the same size as W).
  PceResult Score(const Array2D& b, const PceOptions& options = {}) const;

 private:
  int64_t rows_ = 0, cols_ = 0;
  std::vector<double> spectrum_;  // real 2-D DFT, OpenCV's packed (CCS) layout, rows_×cols_
};

}  // namespace dippas
