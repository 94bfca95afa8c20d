// Image files at the edge of the pipeline (OpenCV inside, not in this header).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dippas {

// A decoded image, RGB order, interleaved H×W×C, values on the 0..255 scale
// (16-bit files are divided by 257 so that 65535 maps to 255).
struct Image {
  int64_t height = 0;       // H
  int64_t width = 0;        // W
  int64_t channels = 0;     // 1 (grayscale) or 3 (RGB)
  int bit_depth = 8;        // 8 or 16, as stored in the file
  std::vector<float> data;  // H*W*C values in 0..255
};

// Reads PNG/JPEG/TIFF/BMP as stored (EXIF orientation ignored, SPEC §1).
// BGR→RGB here; RGBA drops alpha with a warning on stderr; a CMYK JPEG is converted
// to RGB. Throws IoError naming the file for a missing, unreadable or undecodable
// file, a FIFO or device, or a file or image above the limits of limits.h.
Image ReadImage(const std::string& path);

// The same on a file's bytes already in memory; `path` names it in errors.
Image DecodeImage(const std::string& bytes, const std::string& path);

// Height and width from a PNG, JPEG, BMP or classic TIFF header, without decoding;
// false for other formats or a header too short to tell.
bool PeekImageSize(const std::string& bytes, int64_t* height, int64_t* width);

// The same from a file's first 64 KiB (JPEG headers may follow EXIF); false where the file
// cannot be read or its header does not tell.
bool PeekImageFileSize(const std::string& path, int64_t* height, int64_t* width);

// Centre crop N×N, start = ((H−N)//2, (W−N)//2) (prnu-python's cut_ctr).
// Throws std::invalid_argument if the image is smaller than N in either side.
Image CenterCrop(const Image& image, int64_t n, const std::string& name);

// The formats dippas writes, by the output path's extension (case-insensitive; none: PNG).
enum class ImageFormat { kPng, kJpeg, kTiff, kBmp };
// std::invalid_argument naming the path for an extension of no format above.
ImageFormat OutputFormat(const std::string& path);
const char* FormatName(ImageFormat format);  // "png", "jpeg", "tiff", "bmp"
// PNG and TIFF hold 16 bits per channel; JPEG and BMP 8.
bool Holds16Bit(ImageFormat format);

struct EncodeOptions {
  int jpeg_quality = 95;  // 1..100, for JPEG
};

// Writes an image atomically and without metadata, in the format of `path`'s extension: its
// channels (1 or 3), and image.bit_depth bits per channel where the format holds them (16: each
// value v on 0..255 stored as round(v·257), else 8: round(v)), clamped to the range.
void WriteImage(const std::string& path, const Image& image, const EncodeOptions& options = {});

// The bytes WriteImage would write.
std::string EncodeImage(const std::string& path, const Image& image,
                        const EncodeOptions& options = {});

// Lists image files (png, jpg, jpeg, tif, tiff, bmp) directly in `dir`, sorted.
std::vector<std::string> ListImages(const std::string& dir);

}  // namespace dippas
