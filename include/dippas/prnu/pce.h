// PCE settings and result (SPEC §4), shared by the tensor code (detection.h) and the plain CPU
// code (detection_cpu.h); no LibTorch here.
#pragma once

#include <cstdint>

namespace dippas {

struct PceOptions {
  int64_t neighborhood = 11;  // side of the square excluded around the peak (odd)
  int64_t search_radius = 0;  // 0: peak at zero shift; r: signed max over shifts within ±r
};

struct PceResult {
  double pce = 0;        // sign(peak)·peak²/energy
  double peak = 0;       // cross-correlation at the peak
  int64_t peak_row = 0;  // peak shift (rows), in −H/2..H/2
  int64_t peak_col = 0;  // peak shift (cols)
};

}  // namespace dippas
