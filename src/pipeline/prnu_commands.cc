#include "dippas/pipeline/prnu_commands.h"

#include <filesystem>
#include <stdexcept>

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

}  // namespace dippas
