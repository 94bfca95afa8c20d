#include "dippas/prnu/detection_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <opencv2/core.hpp>
#include <stdexcept>

#include "dippas/kernels/cpu/wavelet.h"

namespace dippas {
namespace {

// Grayscale weights of SPEC §1: residual.h's kGrayWeights (whose header brings LibTorch), rounded
// to float as LibTorch does when it multiplies a float tensor by them.
constexpr float kGray[3] = {static_cast<float>(0.29893602), static_cast<float>(0.58704307),
                            static_cast<float>(0.11402090)};

void CheckSameSize(const Array2D& a, const Array2D& b, const char* what) {
  if (a.rows != b.rows || a.cols != b.cols)
    throw std::invalid_argument(std::string(what) + ": sizes differ");
}

// Stage 3: on each 2×2 sub-lattice subtract the mean, then the row means, then the column means;
// in double, rounded to float once, as residual.h's ZeroMeanTotal.
void ZeroMeanTotal(std::vector<double>& x, int64_t h, int64_t w) {
  std::vector<double> col;
  for (int64_t r0 = 0; r0 < 2; ++r0) {
    for (int64_t c0 = 0; c0 < 2; ++c0) {
      const int64_t nr = (h - r0 + 1) / 2, nc = (w - c0 + 1) / 2;
      if (nr <= 0 || nc <= 0) continue;
      auto at = [&](int64_t i, int64_t j) -> double& {
        return x[static_cast<size_t>((r0 + 2 * i) * w + c0 + 2 * j)];
      };
      double total = 0;
      for (int64_t i = 0; i < nr; ++i)
        for (int64_t j = 0; j < nc; ++j) total += at(i, j);
      const double mean = total / static_cast<double>(nr * nc);
      for (int64_t i = 0; i < nr; ++i) {
        double row = 0;
        for (int64_t j = 0; j < nc; ++j) row += (at(i, j) -= mean);
        const double row_mean = row / static_cast<double>(nc);
        for (int64_t j = 0; j < nc; ++j) at(i, j) -= row_mean;
      }
      col.assign(static_cast<size_t>(nc), 0.0);
      for (int64_t i = 0; i < nr; ++i)
        for (int64_t j = 0; j < nc; ++j) col[static_cast<size_t>(j)] += at(i, j);
      for (int64_t j = 0; j < nc; ++j) {
        const double col_mean = col[static_cast<size_t>(j)] / static_cast<double>(nr);
        for (int64_t i = 0; i < nr; ++i) at(i, j) -= col_mean;
      }
    }
  }
}

// Stage 4: F·σ²/(v+σ²) in the DFT domain, σ = sample std of x, v the adaptive Wiener variance of
// |F|/√(HW) (in single precision); the DFTs in double, as residual.h's CPU path, so that both
// give the same float32 values whatever their FFT library.
void WienerDft(const std::vector<float>& x, int64_t h, int64_t w, float* out) {
  const int64_t n = h * w;
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[static_cast<size_t>(i)];
  const double mean = sum / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[static_cast<size_t>(i)] - mean;
    sum2 += d * d;
  }
  const double var = n > 1 ? sum2 / static_cast<double>(n - 1) : 0.0;
  const int ih = static_cast<int>(h), iw = static_cast<int>(w);
  cv::Mat in(ih, iw, CV_64F), f;
  for (int64_t i = 0; i < n; ++i) in.ptr<double>()[i] = x[static_cast<size_t>(i)];
  cv::dft(in, f, cv::DFT_COMPLEX_OUTPUT);
  std::vector<float> gain(static_cast<size_t>(n));
  const double sqrt_n = std::sqrt(static_cast<double>(n));
  for (int64_t r = 0; r < h; ++r) {
    const double* fr = f.ptr<double>(static_cast<int>(r));
    for (int64_t c = 0; c < w; ++c) {
      gain[static_cast<size_t>(r * w + c)] =
          static_cast<float>(std::hypot(fr[2 * c], fr[2 * c + 1]) / sqrt_n);
    }
  }
  cpu::WienerGainPlane(gain.data(), h, w, var);
  // real(ifft2(F·g)) = ifft2(F·g_h) with g_h(k) = (g(k) + g(−k))/2, whose product with F is
  // Hermitian: its inverse is real.
  for (int64_t r = 0; r < h; ++r) {
    double* fr = f.ptr<double>(static_cast<int>(r));
    const int64_t nr = r == 0 ? 0 : h - r;  // −r mod h
    for (int64_t c = 0; c < w; ++c) {
      const int64_t nc = c == 0 ? 0 : w - c;
      const double g = 0.5 * (static_cast<double>(gain[static_cast<size_t>(r * w + c)]) +
                              static_cast<double>(gain[static_cast<size_t>(nr * w + nc)]));
      fr[2 * c] *= g;
      fr[2 * c + 1] *= g;
    }
  }
  cv::Mat res;
  cv::dft(f, res, cv::DFT_INVERSE | cv::DFT_SCALE | cv::DFT_REAL_OUTPUT);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(res.ptr<double>()[i]);
}

double Mean(const Array2D& a) {
  double s = 0;
  for (float v : a.data) s += v;
  return a.data.empty() ? 0.0 : s / static_cast<double>(a.data.size());
}

// A − mean(A) in double, and its real DFT in OpenCV's packed layout.
cv::Mat CenteredSpectrum(const Array2D& a) {
  const double mean = Mean(a);
  cv::Mat d(static_cast<int>(a.rows), static_cast<int>(a.cols), CV_64F);
  double* p = d.ptr<double>();
  for (size_t i = 0; i < a.data.size(); ++i) p[i] = static_cast<double>(a.data[i]) - mean;
  cv::Mat spec;
  cv::dft(d, spec);
  return spec;
}

}  // namespace

Array2D ResidualCpu(const Image& image, double sigma, int levels) {
  const int64_t h = image.height, w = image.width, ch = image.channels, n = h * w;
  if (ch != 1 && ch != 3) throw std::invalid_argument("residual: expected 1 or 3 channels");
  std::vector<float> plane(static_cast<size_t>(n)), noise(static_cast<size_t>(ch * n));
  for (int64_t c = 0; c < ch; ++c) {
    for (int64_t i = 0; i < n; ++i)
      plane[static_cast<size_t>(i)] = image.data[static_cast<size_t>(i * ch + c)];
    cpu::WaveletNoisePlane(plane.data(), h, w, sigma * sigma, levels, noise.data() + c * n);
  }
  std::vector<double> gray(static_cast<size_t>(n));
  if (ch == 1) {
    std::copy(noise.begin(), noise.end(), gray.begin());
  } else {
    const float *r = noise.data(), *g = r + n, *b = g + n;
    for (int64_t i = 0; i < n; ++i)
      gray[static_cast<size_t>(i)] = r[i] * kGray[0] + g[i] * kGray[1] + b[i] * kGray[2];  // float
  }
  ZeroMeanTotal(gray, h, w);
  std::vector<float> zm(gray.begin(), gray.end());
  Array2D out;
  out.rows = h;
  out.cols = w;
  out.data.resize(static_cast<size_t>(n));
  WienerDft(zm, h, w, out.data.data());
  return out;
}

Array2D GrayCpu(const Image& image) {
  const int64_t n = image.height * image.width, ch = image.channels;
  Array2D g;
  g.rows = image.height;
  g.cols = image.width;
  g.data.resize(static_cast<size_t>(n));
  const float* p = image.data.data();
  if (ch == 1) {
    std::copy(p, p + n, g.data.begin());
  } else if (ch == 3) {
    for (int64_t i = 0; i < n; ++i)
      g.data[static_cast<size_t>(i)] =
          p[3 * i] * kGray[0] + p[3 * i + 1] * kGray[1] + p[3 * i + 2] * kGray[2];
  } else {
    throw std::invalid_argument("gray: expected 1 or 3 channels");
  }
  return g;
}

Array2D ProductCpu(const Array2D& gray, const Array2D& k) {
  CheckSameSize(gray, k, "gray·K");
  Array2D b;
  b.rows = k.rows;
  b.cols = k.cols;
  b.data.resize(k.data.size());
  for (size_t i = 0; i < k.data.size(); ++i) b.data[i] = gray.data[i] * k.data[i];
  return b;
}

double NccCpu(const Array2D& w, const Array2D& gray, const Array2D& k) {
  CheckSameSize(w, gray, "NCC");
  CheckSameSize(w, k, "NCC");
  double num = 0, ww = 0, bb = 0;
  for (size_t i = 0; i < w.data.size(); ++i) {
    const double wi = w.data[i],
                 bi = static_cast<double>(gray.data[i]) * static_cast<double>(k.data[i]);
    num += wi * bi;
    ww += wi * wi;
    bb += bi * bi;
  }
  const double den = std::sqrt(ww) * std::sqrt(bb);
  return den > 0 ? num / den : std::numeric_limits<double>::quiet_NaN();
}

PceSpectrumCpu::PceSpectrumCpu(const Array2D& w) : rows_(w.rows), cols_(w.cols) {
  const cv::Mat spec = CenteredSpectrum(w);
  spectrum_.assign(spec.ptr<double>(), spec.ptr<double>() + rows_ * cols_);
}

PceResult PceSpectrumCpu::Score(const Array2D& b, const PceOptions& options) const {
  if (b.rows != rows_ || b.cols != cols_) throw std::invalid_argument("PCE: sizes differ");
  const int64_t h = rows_, wd = cols_;
  const cv::Mat ws(static_cast<int>(h), static_cast<int>(wd), CV_64F,
                   const_cast<double*>(spectrum_.data()));
  cv::Mat prod, cc;
  // C = ifft2(FFT(W)·conj(FFT(B))): the circular cross-correlation, peak at the shift of B.
  cv::mulSpectrums(ws, CenteredSpectrum(b), prod, 0, /*conjB=*/true);
  cv::dft(prod, cc, cv::DFT_INVERSE | cv::DFT_SCALE | cv::DFT_REAL_OUTPUT);
  auto at = [&](int64_t r, int64_t c) {
    return cc.at<double>(static_cast<int>(r), static_cast<int>(c));
  };
  PceResult res;
  res.peak = at(0, 0);
  const int64_t rad = options.search_radius;
  for (int64_t dr = -rad; dr <= rad; ++dr) {
    for (int64_t dc = -rad; dc <= rad; ++dc) {
      const double v = at(((dr % h) + h) % h, ((dc % wd) + wd) % wd);
      if (v > res.peak) {
        res.peak = v;
        res.peak_row = dr;
        res.peak_col = dc;
      }
    }
  }
  // Energy: mean of C² outside the (wrapping) neighbourhood of the peak.
  const int64_t half = options.neighborhood / 2;
  std::vector<char> row_in(static_cast<size_t>(h), 0), col_in(static_cast<size_t>(wd), 0);
  for (int64_t d = -half; d <= half; ++d) {
    row_in[static_cast<size_t>((((res.peak_row + d) % h) + h) % h)] = 1;
    col_in[static_cast<size_t>((((res.peak_col + d) % wd) + wd) % wd)] = 1;
  }
  const int64_t rows_in = std::count(row_in.begin(), row_in.end(), 1);
  const int64_t cols_in = std::count(col_in.begin(), col_in.end(), 1);
  double energy = 0;
  for (int64_t r = 0; r < h; ++r) {
    const double* p = cc.ptr<double>(static_cast<int>(r));
    const bool r_in = row_in[static_cast<size_t>(r)] != 0;
    for (int64_t c = 0; c < wd; ++c) {
      if (!(r_in && col_in[static_cast<size_t>(c)])) energy += p[c] * p[c];
    }
  }
  const double n_out = static_cast<double>(h * wd - rows_in * cols_in);
  energy /= n_out;
  res.pce = (res.peak >= 0 ? 1.0 : -1.0) * res.peak * res.peak / energy;
  return res;
}

}  // namespace dippas
