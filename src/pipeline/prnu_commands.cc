#include "dippas/pipeline/prnu_commands.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "dippas/io/atomic_file.h"
#include "dippas/io/npy.h"
#include "dippas/io/paths.h"
#include "dippas/prnu/fingerprint.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"
#include "io/inputs.h"

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

std::pair<int64_t, int64_t> WriteResidualFile(const std::string& image, const std::string& out,
                                              const PrnuCommandOptions& options) {
  options.Check();
  CheckOutputsNotInputs({{"--out", out}}, {{"--image", image}});
  const Image img = detail::LoadImageChecked(image, options.crop);
  WriteNpy(out, ToArray(Residual(detail::ImageChw(img), ToResidualOptions(options))));
  return {img.height, img.width};
}

std::string FingerprintQualityPath(const std::string& fingerprint) {
  return fingerprint + ".quality.json";
}

std::optional<FingerprintQuality> ReadFingerprintQuality(const std::string& fingerprint) {
  std::ifstream in(FingerprintQualityPath(fingerprint));
  if (!in) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(in);
    FingerprintQuality q;
    q.images = j.at("images").get<int64_t>();
    q.halves_corr = j.at("halves_corr").is_number() ? j.at("halves_corr").get<double>() : NAN;
    q.true_corr =
        j.at("true_corr_estimate").is_number() ? j.at("true_corr_estimate").get<double>() : NAN;
    return q;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string FingerprintQualityText(const FingerprintQuality& q) {
  char line[400];
  if (std::isnan(q.halves_corr)) {
    std::snprintf(line, sizeof(line),
                  "fingerprint quality: unknown from %lld flat-field(s) (two or more are needed "
                  "to compare halves)",
                  static_cast<long long>(q.images));
    return line;
  }
  std::snprintf(line, sizeof(line),
                "fingerprint quality: its two halves (%lld and %lld flat-fields) agree at r = %.2f; "
                "estimated correlation with the camera's pattern ρ ≈ %.2f (an upper bound)",
                static_cast<long long>((q.images + 1) / 2), static_cast<long long>(q.images / 2),
                q.halves_corr, q.true_corr);
  std::string text = line;
  if (q.true_corr < kWeakFingerprint) {
    const int64_t need = FlatFieldsFor(q, kWeakFingerprint);
    text += "\nwarning: a weak fingerprint: anonymizing against it removes what it knows of the "
            "camera, and an analyst with a better one may still attribute the result";
    if (need > 0) {
      text += "; about " + std::to_string(need) + " flat-fields of this kind would give ρ ≈ " +
              std::to_string(kWeakFingerprint).substr(0, 3);
    }
  }
  return text;
}

FingerprintQuality WriteFingerprintFile(const std::vector<std::string>& files,
                                        const std::string& out, const PrnuCommandOptions& options) {
  options.Check();
  std::vector<NamedPath> inputs;
  for (const auto& f : files) inputs.push_back({"flat-field", f});
  const std::string quality_path = FingerprintQualityPath(out);
  CheckOutputsNotInputs({{"--out", out}, {"--out", quality_path}}, inputs);
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
  const FingerprintQuality q = acc.Quality();
  nlohmann::json j;
  j["fingerprint"] = std::filesystem::path(out).filename().string();
  j["images"] = q.images;
  j["size"] = {first.height, first.width};
  j["halves_corr"] = detail::NumberOrNull(q.halves_corr);
  j["true_corr_estimate"] = detail::NumberOrNull(q.true_corr);
  j["note"] =
      "halves_corr: correlation of the fingerprints of the odd and the even flat-fields; "
      "true_corr_estimate: sqrt(2r/(1+r)), the estimated correlation with the camera's pattern "
      "(an upper bound: what all the shots share besides the PRNU counts as the camera's)";
  OutputSet outputs;
  outputs.Stage(out, SerializeNpy(ToArray(acc.Finish())));
  outputs.Stage(quality_path, j.dump(2) + "\n");
  outputs.Commit();
  return q;
}

}  // namespace dippas
