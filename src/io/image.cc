#include "dippas/io/image.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "dippas/io/atomic_file.h"
#include "dippas/io/npy.h"

namespace dippas {

namespace fs = std::filesystem;

namespace {

// Whether a JPEG stream reaches its end-of-image marker. libjpeg (inside OpenCV) decodes a
// truncated JPEG without an error, filling the missing rows with gray, so a cut-off download
// would pass for a photo. Walks the marker segments and the entropy-coded data after each SOS;
// bytes after the EOI (camera trailers) are allowed.
bool JpegReachesEnd(const std::string& bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (b[i] != 0xFF) {  // garbage between segments: libjpeg skips it with a warning
      ++i;
      continue;
    }
    const unsigned char marker = b[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    i += 2;
    if (marker == 0xD9) return true;                                      // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length: TEM, RSTn
    if (i + 2 > n) return false;
    const size_t length = (static_cast<size_t>(b[i]) << 8) | b[i + 1];
    if (length < 2) return false;
    i += length;
    if (marker == 0xDA) {  // SOS: entropy-coded data up to the next marker (FF 00 is a data byte)
      while (i + 1 < n && !(b[i] == 0xFF && b[i + 1] != 0x00 && b[i + 1] != 0xFF &&
                            (b[i + 1] < 0xD0 || b[i + 1] > 0xD7))) {
        ++i;
      }
    }
  }
  return false;
}

}  // namespace

Image ReadImage(const std::string& path) {
  const std::string bytes = ReadFileBytes(path);  // names missing files and directories
  if (bytes.empty()) throw IoError(path + ": empty file, not an image");
  cv::Mat raw;
  try {
    const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
    raw = cv::imdecode(buf, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw IoError(path + ": cannot decode image: " + e.what());
  }
  if (raw.empty()) throw IoError(path + ": cannot decode image (corrupt, truncated or not an image format)");
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xFF\xD8\xFF") == 0 && !JpegReachesEnd(bytes)) {
    throw IoError(path + ": truncated JPEG (the data ends before the end-of-image marker)");
  }
  if (raw.depth() != CV_8U && raw.depth() != CV_16U) {
    throw IoError(path + ": unsupported pixel depth (only 8- and 16-bit images)");
  }
  cv::Mat rgb;
  switch (raw.channels()) {
    case 1: rgb = raw; break;
    case 3: cv::cvtColor(raw, rgb, cv::COLOR_BGR2RGB); break;
    case 4:
      std::cerr << "warning: " << path << ": alpha channel dropped\n";
      cv::cvtColor(raw, rgb, cv::COLOR_BGRA2RGB);
      break;
    default: throw IoError(path + ": unsupported channel count " + std::to_string(raw.channels()));
  }
  Image img;
  img.height = rgb.rows;
  img.width = rgb.cols;
  img.channels = rgb.channels();
  img.bit_depth = raw.depth() == CV_16U ? 16 : 8;
  if (img.height < 1 || img.width < 1) throw IoError(path + ": image has no pixels");
  cv::Mat f;
  rgb.convertTo(f, CV_32F, img.bit_depth == 16 ? 1.0 / 257.0 : 1.0);
  f = f.reshape(1, 1);
  img.data.assign(f.ptr<float>(0), f.ptr<float>(0) + f.total());
  return img;
}

Image CenterCrop(const Image& image, int64_t n, const std::string& name) {
  if (n <= 0) throw std::invalid_argument("--crop must be positive");
  if (image.height < n || image.width < n) {
    throw std::invalid_argument(name + ": image is " + std::to_string(image.height) + "x" + std::to_string(image.width) +
                                ", smaller than the crop " + std::to_string(n) + "x" + std::to_string(n));
  }
  const int64_t r0 = (image.height - n) / 2, c0 = (image.width - n) / 2;
  Image out = image;
  out.height = out.width = n;
  out.data.resize(static_cast<size_t>(n * n * image.channels));
  for (int64_t r = 0; r < n; ++r) {
    const float* src = image.data.data() + ((r + r0) * image.width + c0) * image.channels;
    std::copy(src, src + n * image.channels, out.data.data() + r * n * image.channels);
  }
  return out;
}

std::string EncodeImage(const std::string& path, const Image& image) {
  cv::Mat m(static_cast<int>(image.height), static_cast<int>(image.width),
            CV_8UC(static_cast<int>(image.channels)));
  for (size_t i = 0; i < image.data.size(); ++i) {
    const float v = std::round(image.data[i]);
    m.data[i] = static_cast<uchar>(std::clamp(v, 0.0f, 255.0f));
  }
  if (image.channels == 3) cv::cvtColor(m, m, cv::COLOR_RGB2BGR);
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  if (ext.empty()) ext = ".png";
  std::vector<uchar> buf;
  bool ok = false;
  try {
    ok = cv::imencode(ext, m, buf);
  } catch (const cv::Exception& e) {
    throw IoError(path + ": cannot encode image: " + e.what());
  }
  if (!ok) throw IoError(path + ": cannot encode image as '" + ext + "'");
  return std::string(buf.begin(), buf.end());
}

void WriteImage(const std::string& path, const Image& image) { WriteFileAtomic(path, EncodeImage(path, image)); }

std::vector<std::string> ListImages(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" || ext == ".tiff" || ext == ".bmp") {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace dippas
