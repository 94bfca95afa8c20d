#include "dippas/pipeline/prnu_commands.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "dippas/io/atomic_file.h"
#include "dippas/io/npy.h"
#include "dippas/io/paths.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/fingerprint.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"
#include "eval/inputs.h"

namespace dippas {
namespace {

Array2D ToArray(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous().cpu();
  Array2D a;
  a.rows = c.size(0);
  a.cols = c.size(1);
  a.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return a;
}

ResidualOptions ToResidualOptions(const PrnuCommandOptions& o) {
  ResidualOptions ro;
  ro.sigma = o.sigma;
  return ro;
}

std::string Shape(const Image& im) {
  return detail::SizeText(im.height, im.width) + "x" + std::to_string(im.channels);
}

}  // namespace

void PrnuCommandOptions::Check() const {
  if (!(sigma > 0)) throw std::invalid_argument("--sigma must be positive");
  if (crop < 0) throw std::invalid_argument("--crop must not be negative");
}

std::pair<int64_t, int64_t> WriteResidualFile(const std::string& image, const std::string& out,
                                              const PrnuCommandOptions& options) {
  options.Check();
  CheckOutputsNotInputs({{"--out", out}}, {{"--image", image}});
  const Image img = detail::LoadImageChecked(image, options.crop);
  WriteNpy(out, ToArray(Residual(detail::ImageChw(img), ToResidualOptions(options))));
  return {img.height, img.width};
}

void WriteFingerprintFile(const std::vector<std::string>& files, const std::string& out,
                          const PrnuCommandOptions& options) {
  options.Check();
  std::vector<NamedPath> inputs;
  for (const auto& f : files) inputs.push_back({"flat-field", f});
  CheckOutputsNotInputs({{"--out", out}}, inputs);
  FingerprintAccumulator acc(ToResidualOptions(options));
  Progress progress("fingerprint", static_cast<int64_t>(files.size()), !options.quiet);
  Image first;
  for (size_t i = 0; i < files.size(); ++i) {
    Image img = detail::LoadImageChecked(files[i], options.crop);  // one image in memory at a time
    if (i == 0) {
      first.height = img.height, first.width = img.width, first.channels = img.channels;
    } else if (img.height != first.height || img.width != first.width ||
               img.channels != first.channels) {
      throw std::invalid_argument(
          files[i] + ": image is " + Shape(img) + " but " + files[0] + " is " + Shape(first) +
          " (all flat-fields must have the same size; --crop N can make them so)");
    }
    acc.Add(detail::ImageChw(img));
    progress.Update(static_cast<int64_t>(i + 1),
                    std::filesystem::path(files[i]).filename().string());
  }
  progress.Finish();
  WriteNpy(out, ToArray(acc.Finish()));
}

std::vector<DetectRow> DetectFiles(const std::vector<std::string>& files, const DetectOptions& opt,
                                   const std::function<void(const DetectRow&)>& on_row) {
  opt.prnu.Check();
  std::vector<NamedPath> inputs;
  for (const auto& f : files) inputs.push_back({"image", f});
  for (const auto& f : opt.fingerprints) inputs.push_back({"--prnu", f});
  CheckOutputsNotInputs({{"--json", opt.json}}, inputs);
  const ResidualOptions ro = ToResidualOptions(opt.prnu);
  PceOptions po;
  po.search_radius = opt.search;
  std::vector<DetectRow> rows;
  std::vector<torch::Tensor> ks(opt.fingerprints.size());
  for (const auto& file : files) {
    const Image img = detail::LoadImageChecked(file, opt.prnu.crop);
    const auto chw = detail::ImageChw(img);
    auto w = Residual(chw, ro);  // one residual serves every fingerprint
    auto gray = ToGray(chw);
    auto w_spec = PceSpectrum(w);
    for (size_t f = 0; f < opt.fingerprints.size(); ++f) {
      if (!ks[f].defined()) {
        ks[f] = detail::LoadFingerprint(opt.fingerprints[f], opt.prnu.crop, img.height, img.width,
                                        file);
      } else if (ks[f].size(0) != img.height || ks[f].size(1) != img.width) {
        throw std::invalid_argument(file + ": image is " + detail::SizeText(img.height, img.width) +
                                    " but fingerprint " + opt.fingerprints[f] + " is " +
                                    detail::SizeText(ks[f].size(0), ks[f].size(1)));
      }
      DetectRow row;
      row.image = file;
      row.fingerprint = opt.fingerprints[f];
      row.ncc = Ncc(w, gray, ks[f]).item<double>();
      const auto pce = PceFromSpectrum(w_spec, gray * ks[f], po);
      row.pce = pce.pce;
      row.peak_row = pce.peak_row;
      row.peak_col = pce.peak_col;
      row.attributed = std::isfinite(pce.pce) && pce.pce >= opt.threshold;
      on_row(row);
      rows.push_back(row);
    }
  }
  if (!opt.json.empty()) {
    nlohmann::json results = nlohmann::json::array();
    for (const auto& r : rows) {
      results.push_back({{"image", r.image},
                         {"fingerprint", r.fingerprint},
                         {"ncc", detail::NumberOrNull(r.ncc)},
                         {"pce", detail::NumberOrNull(r.pce)},
                         {"peak_shift", {r.peak_row, r.peak_col}},
                         {"attributed", r.attributed}});
    }
    const nlohmann::json j = {{"threshold", opt.threshold},
                              {"sigma", opt.prnu.sigma},
                              {"crop", opt.prnu.crop},
                              {"dippas", Version()},
                              {"results", results}};
    WriteFileAtomic(opt.json, j.dump(2) + "\n");
  }
  return rows;
}

}  // namespace dippas
