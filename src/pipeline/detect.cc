// `dippas detect` as a library call, without LibTorch (see prnu_commands.h): the executable that
// runs it never loads LibTorch, whose start-up alone outweighed the detection of a dozen images.
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "dippas/io/atomic_file.h"
#include "dippas/io/paths.h"
#include "dippas/pipeline/prnu_commands.h"
#include "dippas/prnu/detection_cpu.h"
#include "io/inputs_plain.h"

namespace dippas {
namespace {

// What one image gives: its rows, or the error that stopped it.
struct ImageResult {
  std::vector<DetectRow> rows;
  std::exception_ptr error;
};

std::vector<DetectRow> ScoreImage(const std::string& file, const Image& img,
                                  const DetectOptions& opt, const std::vector<Array2D>& ks) {
  PceOptions po;
  po.search_radius = opt.search;
  const Array2D w = ResidualCpu(img, opt.prnu.sigma);  // one residual serves every fingerprint
  const Array2D gray = GrayCpu(img);
  const PceSpectrumCpu w_spec(w);
  std::vector<DetectRow> rows;
  for (size_t f = 0; f < ks.size(); ++f) {
    if (ks[f].rows != img.height || ks[f].cols != img.width) {
      throw std::invalid_argument(file + ": image is " + detail::SizeText(img.height, img.width) +
                                  " but fingerprint " + opt.fingerprints[f] + " is " +
                                  detail::SizeText(ks[f].rows, ks[f].cols));
    }
    DetectRow row;
    row.image = file;
    row.fingerprint = opt.fingerprints[f];
    row.ncc = NccCpu(w, gray, ks[f]);
    const auto pce = w_spec.Score(ProductCpu(gray, ks[f]), po);
    row.pce = pce.pce;
    row.peak_row = pce.peak_row;
    row.peak_col = pce.peak_col;
    row.attributed = std::isfinite(pce.pce) && pce.pce >= opt.threshold;
    rows.push_back(row);
  }
  return rows;
}

// Scores `files` in order (see DetectFiles), handing each row to `on_row`.
void ScoreFiles(const std::vector<std::string>& files, const DetectOptions& opt,
                const std::function<void(const DetectRow&)>& on_row) {
  if (files.empty()) return;
  // The first image sets the size every fingerprint must have (errors name both files).
  std::optional<Image> first = detail::LoadImageChecked(files[0], opt.prnu.crop);
  std::vector<Array2D> ks;
  for (const auto& k : opt.fingerprints) {
    ks.push_back(
        detail::LoadFingerprintArray(k, opt.prnu.crop, first->height, first->width, files[0]));
  }

  auto emit = [&](const std::vector<DetectRow>& image_rows) {
    for (const auto& row : image_rows) on_row(row);
  };
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t n_workers = std::min(
      files.size(), static_cast<size_t>(opt.threads > 0 ? opt.threads : static_cast<int>(cores)));
  if (n_workers <= 1) {
    for (size_t i = 0; i < files.size(); ++i) {
      const Image img =
          i == 0 ? std::move(*first) : detail::LoadImageChecked(files[i], opt.prnu.crop);
      emit(ScoreImage(files[i], img, opt, ks));
    }
  } else {
    // Images are independent: the workers take the next one each, single-threaded (no spinning
    // pool to fight over the cores), and this thread hands the rows on in image order.
    std::vector<std::optional<ImageResult>> results(files.size());
    std::mutex mu;
    std::condition_variable done;
    size_t next = 0;
    auto work = [&] {
      for (;;) {
        size_t i;
        std::optional<Image> img;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (next >= files.size()) return;
          i = next++;
          if (i == 0) img = std::move(first);
        }
        ImageResult r;
        try {
          if (!img) img = detail::LoadImageChecked(files[i], opt.prnu.crop);
          r.rows = ScoreImage(files[i], *img, opt, ks);
        } catch (...) {
          r.error = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(mu);
        results[i] = std::move(r);
        done.notify_all();
      }
    };
    std::vector<std::thread> workers;
    for (size_t t = 0; t < n_workers; ++t) {
      try {
        workers.emplace_back(work);
      } catch (const std::system_error&) {
        if (workers.empty()) throw;  // none started: nothing to join
        break;                       // fewer threads than asked: the others share the work
      }
    }
    std::exception_ptr error;
    for (size_t i = 0; i < files.size() && !error; ++i) {
      ImageResult r;
      {
        std::unique_lock<std::mutex> lock(mu);
        done.wait(lock, [&] { return results[i].has_value(); });
        r = std::move(*results[i]);
      }
      try {
        if (r.error) std::rethrow_exception(r.error);
        emit(r.rows);
      } catch (...) {
        error = std::current_exception();
        std::lock_guard<std::mutex> lock(mu);
        next = files.size();  // hand out no more images; the workers finish the ones they hold
      }
    }
    for (auto& t : workers) t.join();
    if (error) std::rethrow_exception(error);
  }
}

}  // namespace

void PrnuCommandOptions::Check() const {
  if (!(sigma > 0)) throw std::invalid_argument("--sigma must be positive");
  if (crop < 0) throw std::invalid_argument("--crop must not be negative");
}

std::vector<DetectRow> DetectFiles(const std::vector<std::string>& files, const DetectOptions& opt,
                                   const std::function<void(const DetectRow&)>& on_row) {
  opt.prnu.Check();
  std::vector<NamedPath> inputs;
  for (const auto& f : files) inputs.push_back({"image", f});
  for (const auto& f : opt.fingerprints) inputs.push_back({"--prnu", f});
  CheckOutputsNotInputs({{"--json", opt.json}}, inputs);
  std::vector<DetectRow> rows;
  ScoreFiles(files, opt, [&](const DetectRow& row) {
    on_row(row);
    rows.push_back(row);
  });

  if (!opt.json.empty()) {
    nlohmann::json results_json = nlohmann::json::array();
    for (const auto& r : rows) {
      results_json.push_back({{"image", r.image},
                              {"fingerprint", r.fingerprint},
                              {"ncc", detail::NumberOrNull(r.ncc)},
                              {"pce", detail::NumberOrNull(r.pce)},
                              {"peak_shift", {r.peak_row, r.peak_col}},
                              {"attributed", r.attributed}});
    }
    const nlohmann::json j = {{"threshold", opt.threshold},
                              {"sigma", opt.prnu.sigma},
                              {"crop", opt.prnu.crop},
                              {"dippas", DIPPAS_VERSION},
                              {"results", results_json}};
    WriteFileAtomic(opt.json, j.dump(2) + "\n");
  }
  return rows;
}

}  // namespace dippas
