// AnonymizeOptions: what a request must satisfy before any file is read (Check, also called by
// batch and evaluate), and the default names of its outputs; the flow itself is anonymize.cc.
#include <filesystem>
#include <stdexcept>
#include <string>

#include "dippas/io/image.h"
#include "dippas/pipeline/anonymize.h"
#include "dippas/pipeline/usage_error.h"

namespace dippas {

namespace fs = std::filesystem;

void AnonymizeOptions::Check() const {
  if (image.empty()) throw UsageError("--image is required");
  if (method != "dip" && method != "subtract" && method != "denoise") {
    throw UsageError("--method " + method + ": expected dip, subtract or denoise");
  }
  if (!prnu.empty() && blind) throw UsageError("--prnu and --blind exclude each other");
  if (method == "subtract" && prnu.empty()) throw UsageError("--method subtract needs --prnu");
  // Denoising ignores P: it runs with or without a fingerprint.
  if (prnu.empty() && !blind && method != "denoise")
    throw UsageError("give --prnu K.npy (PRNU-aware) or --blind");
  if (method != "dip" && (!history.empty() || !save_pool.empty() || history_ncc)) {
    throw UsageError("--history, --history-ncc and --save-pool apply to --method dip only");
  }
  if (crop < 0) throw UsageError("--crop must be ≥ 0");
  if (blind && method == "dip" && dip.select_residual > 0) {
    throw UsageError(
        "select_residual ranks blocks by P and the photo's residual: it needs --prnu "
        "(in blind mode P is that residual already)");
  }
  if (!checkpoint.empty() && method != "dip")
    throw UsageError("--checkpoint applies to --method dip only");
  if (restart && checkpoint.empty()) throw UsageError("--restart needs --checkpoint");
  ImageFormat format = ImageFormat::kPng;
  try {
    format = OutputFormat(OutputPath());
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--out ") + e.what());
  }
  if (jpeg_quality != 0 && (jpeg_quality < 1 || jpeg_quality > 100)) {
    throw UsageError("--jpeg-quality must be 1 to 100, got " + std::to_string(jpeg_quality));
  }
  if (jpeg_quality != 0 && format != ImageFormat::kJpeg) {
    throw UsageError("--jpeg-quality applies to a JPEG output (--out x.jpg), not " +
                     std::string(FormatName(format)));
  }
  try {
    dip.Check();
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("invalid option ") + e.what());
  }
}

std::string AnonymizeOptions::OutputPath() const {
  if (!out.empty()) return out;
  const fs::path p(image);
  return (p.parent_path() / (p.stem().string() + ".anon.png")).string();
}

std::string AnonymizeOptions::MetricsPath() const {
  if (!metrics.empty()) return metrics;
  const fs::path o(OutputPath());
  return (o.parent_path() / (o.stem().string() + ".json")).string();
}

std::string AnonymizeOptions::WorkFolder() const {
  return checkpoint.empty() ? OutputPath() + ".tiles" : checkpoint;
}

}  // namespace dippas
