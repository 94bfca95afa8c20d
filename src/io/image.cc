#include "dippas/io/image.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "dippas/io/atomic_file.h"
#include "dippas/io/limits.h"
#include "dippas/io/npy.h"
#include "dippas/io/paths.h"

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

uint32_t Be16(const unsigned char* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t Be32(const unsigned char* p) { return (Be16(p) << 16) | Be16(p + 2); }
uint32_t Le16(const unsigned char* p) { return (uint32_t{p[1]} << 8) | p[0]; }
uint32_t Le32(const unsigned char* p) { return (Le16(p + 2) << 16) | Le16(p); }

// A JPEG's frame header (SOFn): its height, width and component count.
bool JpegFrame(const std::string& bytes, int64_t* height, int64_t* width, int* components) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 2;  // after SOI
  while (i + 3 < n) {
    if (b[i] != 0xFF) {  // garbage between segments: libjpeg skips it, so must this
      ++i;
      continue;
    }
    const unsigned char marker = b[i + 1];
    if (marker == 0xFF) {
      ++i;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 ||
        (marker >= 0xD0 && marker <= 0xD7)) {  // FF00: skipped too
      i += 2;
      continue;
    }
    const size_t length = Be16(b + i + 2);
    const bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (length < 8 || i + 10 > n) return false;
      *height = Be16(b + i + 5);
      *width = Be16(b + i + 7);
      *components = b[i + 9];
      return true;
    }
    if (marker == 0xDA || marker == 0xD9) return false;  // scan or end before a frame
    // A length under 2 skips nothing in libjpeg, which then scans on for the next marker.
    i += 2 + std::max<size_t>(length, 2);
  }
  return false;
}

}  // namespace

bool PeekImageSize(const std::string& bytes, int64_t* height, int64_t* width) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  if (n >= 24 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) == 0 &&
      bytes.compare(12, 4, "IHDR") == 0) {
    *width = Be32(b + 16);
    *height = Be32(b + 20);
    return true;
  }
  if (n >= 3 && bytes.compare(0, 3, "\xFF\xD8\xFF") == 0) {
    int components = 0;
    return JpegFrame(bytes, height, width, &components) &&
           *height > 0;  // 0: height set later (DNL)
  }
  if (n >= 26 && b[0] == 'B' && b[1] == 'M') {
    if (Le32(b + 14) == 12) {  // BITMAPCOREHEADER: 16-bit sides
      *width = Le16(b + 18);
      *height = Le16(b + 20);
    } else {
      *width = static_cast<int32_t>(Le32(b + 18));
      *height = static_cast<int32_t>(Le32(b + 22));
      if (*height < 0) *height = -*height;  // top-down rows
    }
    return true;
  }
  const bool le = n >= 8 && bytes.compare(0, 4, "II*\0", 4) == 0;
  const bool be = n >= 8 && bytes.compare(0, 4, "MM\0*", 4) == 0;
  if (le || be) {  // classic TIFF: the first IFD's ImageWidth (256) and ImageLength (257)
    auto u16 = [&](size_t at) { return le ? Le16(b + at) : Be16(b + at); };
    auto u32 = [&](size_t at) { return le ? Le32(b + at) : Be32(b + at); };
    const size_t ifd = u32(4);
    if (ifd + 2 > n) return false;
    const size_t entries = u16(ifd);
    int64_t w = -1, h = -1;
    for (size_t e = 0; e < entries && ifd + 2 + 12 * (e + 1) <= n; ++e) {
      const size_t at = ifd + 2 + 12 * e;
      const uint32_t tag = u16(at), type = u16(at + 2);
      if (tag != 256 && tag != 257) continue;
      const int64_t value = type == 3 ? u16(at + 8) : type == 4 ? u32(at + 8) : -1;  // SHORT, LONG
      (tag == 256 ? w : h) = value;
    }
    if (w < 0 || h < 0) return false;
    *width = w;
    *height = h;
    return true;
  }
  return false;
}

bool PeekImageFileSize(const std::string& path, int64_t* height, int64_t* width) {
  std::ifstream in(path, std::ios::binary);
  std::string head(1 << 16, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return !in.bad() && !head.empty() && PeekImageSize(head, height, width);
}

Image ReadImage(const std::string& path) {
  // Names missing files, directories, FIFOs and devices, and files above the size limit.
  return DecodeImage(ReadFileBytes(path), path);
}

Image DecodeImage(const std::string& bytes, const std::string& path) {
  if (bytes.empty()) throw IoError(path + ": empty file, not an image");
  if (static_cast<int64_t>(bytes.size()) > kMaxInputFileBytes) {
    throw IoError(path + ": file is above the limit of 2 GiB for an input file");
  }
  auto check_pixels = [&](int64_t h, int64_t w) {
    if (h > 0 && w > 0 && w > kMaxImagePixels / h) {  // other values: the decoder's to refuse
      throw IoError(path + ": image is " + std::to_string(h) + "x" + std::to_string(w) +
                    ", above the limit of 256 megapixels");
    }
  };
  // The formats of the README only: OpenCV would decode others (PPM, WebP, …) without the
  // header check below, allocating up to its own limit of 2^30 pixels first.
  auto starts = [&](const char* magic, size_t n) {
    return bytes.size() >= n && bytes.compare(0, n, magic, n) == 0;
  };
  if (!starts("\x89PNG\r\n\x1a\n", 8) && !starts("\xFF\xD8\xFF", 3) && !starts("BM", 2) &&
      !starts("II*\0", 4) && !starts("MM\0*", 4) && !starts("II+\0", 4) && !starts("MM\0+", 4)) {
    throw IoError(path + ": cannot decode image (not a PNG, JPEG, TIFF or BMP file)");
  }
  int64_t peek_h = 0, peek_w = 0;
  if (PeekImageSize(bytes, &peek_h, &peek_w)) check_pixels(peek_h, peek_w);  // before decoding
  const bool jpeg = bytes.size() >= 3 && bytes.compare(0, 3, "\xFF\xD8\xFF") == 0;
  // A 4-component JPEG is CMYK (or YCCK): JPEG has no alpha, so the fourth channel must not be
  // dropped as one. IMREAD_COLOR has libjpeg and OpenCV convert it to BGR.
  int components = 0;
  const bool cmyk = jpeg && JpegFrame(bytes, &peek_h, &peek_w, &components) && components == 4;
  cv::Mat raw;
  try {
    const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
    raw = cv::imdecode(
        buf, (cmyk ? cv::IMREAD_COLOR : cv::IMREAD_UNCHANGED) | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw IoError(path + ": cannot decode image: " + e.what());
  }
  if (raw.empty()) throw IoError(path + ": cannot decode image (corrupt, truncated or not an image format)");
  check_pixels(raw.rows, raw.cols);
  if (jpeg && !JpegReachesEnd(bytes)) {
    throw IoError(path + ": truncated JPEG (the data ends before the end-of-image marker)");
  }
  if (cmyk && raw.channels() != 3) {
    throw IoError(path + ": CMYK JPEG that cannot be converted to RGB (" +
                  std::to_string(raw.channels()) + " channels decoded)");
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

ImageFormat OutputFormat(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  if (ext.empty() || ext == ".png") return ImageFormat::kPng;
  if (ext == ".jpg" || ext == ".jpeg") return ImageFormat::kJpeg;
  if (ext == ".tif" || ext == ".tiff") return ImageFormat::kTiff;
  if (ext == ".bmp") return ImageFormat::kBmp;
  throw std::invalid_argument(path + ": '" + ext +
                              "' is no image format dippas writes (.png, .jpg, .tif, .bmp)");
}

const char* FormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kTiff:
      return "tiff";
    case ImageFormat::kBmp:
      return "bmp";
    case ImageFormat::kPng:
      break;
  }
  return "png";
}

bool Holds16Bit(ImageFormat format) {
  return format == ImageFormat::kPng || format == ImageFormat::kTiff;
}

std::string EncodeImage(const std::string& path, const Image& image, const EncodeOptions& options) {
  const ImageFormat format = OutputFormat(path);
  if (image.channels != 1 && image.channels != 3) {
    throw IoError(path + ": cannot encode an image of " + std::to_string(image.channels) +
                  " channels (1 or 3)");
  }
  const bool wide = image.bit_depth == 16 && Holds16Bit(format);
  const int rows = static_cast<int>(image.height), cols = static_cast<int>(image.width);
  const int ch = static_cast<int>(image.channels);
  cv::Mat m(rows, cols, wide ? CV_16UC(ch) : CV_8UC(ch));
  if (wide) {
    auto* px = reinterpret_cast<uint16_t*>(m.data);
    for (size_t i = 0; i < image.data.size(); ++i) {
      const float v = std::round(image.data[i] * 257.0f);
      px[i] = static_cast<uint16_t>(std::clamp(v, 0.0f, 65535.0f));
    }
  } else {
    for (size_t i = 0; i < image.data.size(); ++i) {
      const float v = std::round(image.data[i]);
      m.data[i] = static_cast<uchar>(std::clamp(v, 0.0f, 255.0f));
    }
  }
  if (ch == 3) cv::cvtColor(m, m, cv::COLOR_RGB2BGR);
  std::vector<int> params;
  if (format == ImageFormat::kJpeg) {
    if (options.jpeg_quality < 1 || options.jpeg_quality > 100) {
      throw std::invalid_argument(path + ": JPEG quality must be 1 to 100, got " +
                                  std::to_string(options.jpeg_quality));
    }
    params = {cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
  }
  const std::string ext = std::string(".") + FormatName(format);
  std::vector<uchar> buf;
  bool ok = false;
  try {
    ok = cv::imencode(ext == ".jpeg" ? ".jpg" : ext, m, buf, params);
  } catch (const cv::Exception& e) {
    throw IoError(path + ": cannot encode image: " + e.what());
  }
  if (!ok) throw IoError(path + ": cannot encode image as '" + ext + "'");
  return std::string(buf.begin(), buf.end());
}

void WriteImage(const std::string& path, const Image& image, const EncodeOptions& options) {
  WriteFileAtomic(path, EncodeImage(path, image, options));
}

std::vector<std::string> ListImages(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && IsImageFile(e.path())) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace dippas
