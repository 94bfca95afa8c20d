// --describe with --image: what a run of that photo will be, before it starts. The image's
// header is read, not its pixels, where the format allows (a 6 MP JPEG is not decoded).
#include <sstream>
#include <string>

#include "dippas/io/image.h"
#include "dippas/pipeline/anonymize.h"
#include "dippas/pipeline/memory_check.h"
#include "dippas/pipeline/tiles.h"
#include "dippas/pipeline/usage_error.h"

namespace dippas {

std::string DescribeRun(const AnonymizeOptions& opt) {
  int64_t h = 0, w = 0;
  // A format the header does not tell: decode it.
  if (!PeekImageFileSize(opt.image, &h, &w) || h <= 0 || w <= 0) {
    const Image img = ReadImage(opt.image);
    h = img.height;
    w = img.width;
  }
  std::ostringstream os;
  os << "image: " << opt.image << ", " << h << "x" << w;
  if (opt.crop > 0) {
    if (opt.crop > h || opt.crop > w)
      throw UsageError(opt.image + ": image is " + std::to_string(h) + "x" + std::to_string(w) +
                       ", smaller than --crop " + std::to_string(opt.crop));
    h = w = opt.crop;
    os << ", centre crop " << h << "x" << w;
  }
  os << "\n";
  const DipOptions& dip = opt.dip;
  const TileGrid grid = MakeTileGrid(h, w, dip.tile_size, dip.block_size, dip.tile_margin);
  if (grid.tiled()) {
    os << "tiles: " << grid.rows << " x " << grid.cols << " of " << grid.tile_size << " px (+"
       << grid.margin << " px of context), " << grid.tiles.size() << " runs\n";
  } else {
    os << "tiles: none (the image is one run)\n";
  }
  const MemoryEstimate need = EstimateCpuMemory(dip, grid, h, w);
  os << "memory on the CPU: about " << BytesText(need.bytes) << " (largest box " << need.tile_h
     << "x" << need.tile_w << ", " << need.tiles_at_once << " at a time)";
  const auto available = AvailableMemory();
  if (available) os << "; " << BytesText(*available) << " available";
  os << "\n";
  if (available) {
    if (auto m = MemoryWarning(need, *available)) os << *m << "\n";
  }
  return os.str();
}

}  // namespace dippas
