// Plain C++ kernels for the CPU path of the residual's hot stages: the same
// arithmetic as the tensor code in wavelet.cc / residual.cc (which serves other
// devices), written as loops because LibTorch's small-op overhead dominates on
// a CPU for these sizes (see `dippas bench`).
#pragma once

#include <cstdint>

namespace dippas::cpu {

// Each function refuses (std::invalid_argument) a plane without pixels, a null array, a noise
// variance that is negative or not finite, and levels outside 1..32.

// Stage 1 of SPEC §2 on one H×W plane (row-major): db4 wavelet decomposition
// (`levels` levels, symmetric extension), adaptive Wiener on every detail band
// with noise variance σ², approximation zeroed, reconstruction cropped to H×W.
void WaveletNoisePlane(const float* in, int64_t h, int64_t w, double noise_var, int levels, float* out);

// Adaptive Wiener filter (windows 3,5,7,9, zero padding) on an h×w plane, in place.
void WienerAdaptivePlane(double* x, int64_t h, int64_t w, double noise_var);
void WienerAdaptivePlane(float* x, int64_t h, int64_t w, double noise_var);

// The filter's gain σ²/(v+σ²) instead of the filtered values, in place.
void WienerGainPlane(float* x, int64_t h, int64_t w, double noise_var);

}  // namespace dippas::cpu
