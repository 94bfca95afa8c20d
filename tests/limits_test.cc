// The input limits (include/dippas/io/limits.h): FIFOs and devices refused without blocking,
// files above 2 GiB and images above 256 megapixels refused before they are read or decoded,
// pools above the pixel limit refused, network depth and widths bounded; and CMYK JPEGs read as
// the RGB image they encode.
#include "dippas/io/limits.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "dippas/dip/config.h"
#include "dippas/dip/options.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/image.h"
#include "dippas/io/npy.h"
#include "dippas/io/pool.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dippas_limits_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string Path(const std::string& name) const { return (fs::path(root_) / name).string(); }
  void Write(const std::string& name, const std::string& bytes) const {
    std::ofstream(Path(name), std::ios::binary) << bytes;
  }
  std::string root_;
};

// The message `f` throws (any std::exception), "" when it returns. A call still running after
// 20 s means the code blocks or reads without end: a FIFO is unblocked by opening and closing
// its write end; anything else ends the test binary, which must never hang.
template <typename F>
std::string ErrorWithin(F f, const std::string& fifo = "") {
  auto run = std::async(std::launch::async, [&]() -> std::string {
    try {
      f();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  });
  if (run.wait_for(std::chrono::seconds(20)) == std::future_status::timeout) {
    ADD_FAILURE() << "still reading after 20 s";
    if (fifo.empty()) {
      std::cerr << "limits_test: a read did not end: giving up\n";
      std::_Exit(1);
    }
    const int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
  }
  return run.get();
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST_F(LimitsTest, FifoIsRefusedWithoutWaitingForAWriter) {
  const std::string fifo = Path("input.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const auto& msg :
       {ErrorWithin([&] { ReadImage(fifo); }, fifo), ErrorWithin([&] { ReadNpy(fifo); }, fifo),
        ErrorWithin([&] { LoadDipConfig(fifo); }, fifo)}) {
    EXPECT_TRUE(Contains(msg, fifo + ": not a regular file")) << msg;
  }
}

TEST_F(LimitsTest, DeviceIsRefusedNotReadForever) {
  if (!fs::exists("/dev/zero")) GTEST_SKIP() << "/dev/zero absent";
  EXPECT_EQ(ErrorWithin([] { ReadImage("/dev/zero"); }),
            "/dev/zero: not a regular file (a FIFO, device or socket cannot be read as input)");
  EXPECT_TRUE(
      Contains(ErrorWithin([] { LoadDipConfig("/dev/zero"); }), "/dev/zero: not a regular file"));
}

TEST_F(LimitsTest, FileAboveTwoGibibytesIsRefusedBeforeReading) {
  // Sparse: no disk space and no time, but fstat reports 2 GiB.
  const std::string big = Path("big.png");
  {
    const int fd = open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kMaxInputFileBytes + 1), 0);
    close(fd);
  }
  const std::string msg = ErrorWithin([&] { ReadImage(big); });
  EXPECT_EQ(msg, big + ": file is 2147483648 bytes, above the limit of 2 GiB for an input file");
  EXPECT_TRUE(Contains(ErrorWithin([&] { ReadNpy(big); }), "above the limit of 2 GiB"));
  EXPECT_TRUE(Contains(ErrorWithin([&] { LoadDipConfig(big); }),
                       big + ": file is 2147483648 bytes, above"));
  // At the limit itself the size is accepted (the content then fails as it should, as not a PNG).
  ASSERT_EQ(truncate(big.c_str(), 16), 0);
  EXPECT_TRUE(Contains(ErrorWithin([&] { ReadImage(big); }), "cannot decode"))
      << ErrorWithin([&] { ReadImage(big); });
}

uint8_t Byte(uint32_t v, int shift) { return static_cast<uint8_t>((v >> shift) & 0xFF); }
std::string Be32(uint32_t v) {
  return {char(Byte(v, 24)), char(Byte(v, 16)), char(Byte(v, 8)), char(Byte(v, 0))};
}
std::string Be16(uint32_t v) { return {char(Byte(v, 8)), char(Byte(v, 0))}; }
std::string Le32(uint32_t v) {
  return {char(Byte(v, 0)), char(Byte(v, 8)), char(Byte(v, 16)), char(Byte(v, 24))};
}
std::string Le16(uint32_t v) { return {char(Byte(v, 0)), char(Byte(v, 8))}; }

// Headers that announce H×W and hold no pixel data: refused before decoding, by the size.
std::string PngHeader(uint32_t h, uint32_t w) {
  std::string s("\x89PNG\r\n\x1a\n", 8);
  s += Be32(13) + "IHDR" + Be32(w) + Be32(h) + std::string("\x08\x02\x00\x00\x00", 5) + Be32(0);
  return s;
}
std::string JpegHeader(uint32_t h, uint32_t w) {
  std::string s("\xFF\xD8", 2);
  s += std::string("\xFF\xE0", 2) + Be16(16) + std::string("JFIF\0\x01\x01\0\0\x01\0\x01\0\0", 14);
  s += std::string("\xFF\xC0", 2) + Be16(17) + '\x08' + Be16(h) + Be16(w) + '\x03';
  for (int c = 1; c <= 3; ++c) s += std::string{char(c), '\x11', '\x00'};
  return s + std::string("\xFF\xD9", 2);
}
std::string TiffHeader(uint32_t h, uint32_t w) {
  std::string s("II*\0", 4);
  s += Le32(8) + Le16(2);
  s += Le16(256) + Le16(4) + Le32(1) + Le32(w);  // ImageWidth, LONG
  s += Le16(257) + Le16(3) + Le32(1) + Le16(static_cast<uint16_t>(h)) +
       Le16(0);  // ImageLength, SHORT
  return s + Le32(0);
}
std::string BmpHeader(int32_t h, int32_t w) {
  std::string s = "BM" + Le32(54) + Le32(0) + Le32(54) + Le32(40) + Le32(static_cast<uint32_t>(w)) +
                  Le32(static_cast<uint32_t>(h)) + Le16(1) + Le16(24) + Le32(0) + Le32(0);
  return s + std::string(16, '\0');
}

TEST_F(LimitsTest, ImageAbovePixelLimitIsRefusedBeforeDecoding) {
  struct Case {
    std::string name, bytes, size;
  };
  const std::vector<Case> cases = {
      {"huge.png", PngHeader(20000, 20000), "20000x20000"},
      {"huge.jpg", JpegHeader(65000, 65000), "65000x65000"},
      // A segment of length 0 and junk before the frame: libjpeg skips both (fuzzing found the
      // 2.9 GB allocation this led to).
      {"huge_len0.jpg",
       std::string("\xFF\xD8\xFF\xEE\0\0", 6) + std::string(12, '\0') +
           JpegHeader(65000, 65000).substr(2),
       "65000x65000"},
      {"huge.tif", TiffHeader(60000, 5000), "60000x5000"},
      {"huge.bmp", BmpHeader(-30000, 10000), "30000x10000"},  // negative height: top-down rows
  };
  for (const auto& c : cases) {
    Write(c.name, c.bytes);
    EXPECT_EQ(ErrorWithin([&] { ReadImage(Path(c.name)); }),
              Path(c.name) + ": image is " + c.size + ", above the limit of 256 megapixels");
  }
  // Just below the limit the header is not refused for its size (only later, for lacking data).
  Write("ok.png", PngHeader(16384, 16384));
  EXPECT_FALSE(Contains(ErrorWithin([&] { ReadImage(Path("ok.png")); }), "megapixels"));
}

TEST_F(LimitsTest, PeekImageSizeReadsRealHeaders) {
  Image img;
  img.height = 37;
  img.width = 53;
  img.channels = 3;
  img.data.assign(37 * 53 * 3, 100.0f);
  for (const std::string ext : {".png", ".jpg", ".tif", ".bmp"}) {
    WriteImage(Path("a" + ext), img);
    int64_t h = 0, w = 0;
    ASSERT_TRUE(PeekImageSize(ReadFileBytes(Path("a" + ext)), &h, &w)) << ext;
    EXPECT_EQ(h, 37) << ext;
    EXPECT_EQ(w, 53) << ext;
  }
  int64_t h = 0, w = 0;
  EXPECT_FALSE(PeekImageSize("GIF89a", &h, &w));
  EXPECT_FALSE(PeekImageSize(std::string("\xFF\xD8\xFF", 3), &h, &w));
}

TEST_F(LimitsTest, PoolAbovePixelLimitIsRefused) {
  fs::create_directory(Path("pool"));
  Write("pool/pool.json",
        R"({"complete": true, "size": [1048576, 1048576], "candidates": [{}, {}]})");
  const std::string npy_header =
      "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1048576, 1048576, 3), }";
  Write("pool/pool.npy",
        std::string("\x93NUMPY\x01\x00", 8) + char(npy_header.size()) + '\0' + npy_header);
  const std::string msg = ErrorWithin([&] { PoolReader reader(Path("pool")); });
  EXPECT_EQ(msg, Path("pool/pool.json") +
                     ": \"size\" 1048576x1048576 is above the limit of 256 megapixels");
}

TEST_F(LimitsTest, NetworkDepthAndWidthsAreBounded) {
  auto message = [](const DipOptions& o) {
    try {
      o.Check();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  DipOptions o;
  o.filters.assign(8, 4);  // 8 levels: the most
  o.skips.assign(7, 4);
  EXPECT_EQ(message(o), "");
  o.filters.assign(9, 4);
  o.skips.assign(8, 4);
  EXPECT_EQ(message(o), "filters: needs 2 to 8 levels");
  o.filters.assign(70, 4);  // 1 << 69 would be undefined
  o.skips.assign(69, 4);
  EXPECT_EQ(message(o), "filters: needs 2 to 8 levels");
  o = DipOptions{};
  o.filters[1] = 4097;
  EXPECT_EQ(message(o), "filters: widths must be in 1..4096");
  o = DipOptions{};
  o.skips[0] = int64_t{1} << 40;
  EXPECT_EQ(message(o), "skips: widths must be in 1..4096");
  o = DipOptions{};
  o.input_depth = 100000;
  EXPECT_EQ(message(o), "input_depth: must be in 1..4096");
  // The same through a config file, naming the file.
  Write("deep.yaml", "filters: [4, 4, 4, 4, 4, 4, 4, 4, 4]\nskips: [4, 4, 4, 4, 4, 4, 4, 4]\n");
  EXPECT_TRUE(Contains(ErrorWithin([&] { LoadDipConfig(Path("deep.yaml")); }), "deep.yaml"));
  EXPECT_TRUE(Contains(ErrorWithin([&] { LoadDipConfig(Path("deep.yaml")); }), "2 to 8 levels"));
}

// --- CMYK JPEGs ---------------------------------------------------------------------------------

// Writes an RGB gradient as PNG and as CMYK JPEG and TIFF with Python's PIL (python3-pil).
bool MakeCmykFiles(const std::string& dir) {
  const std::string cmd =
      "/usr/bin/python3 -c '\n"
      "import sys\n"
      "from PIL import Image\n"
      "im = Image.new(\"RGB\", (40, 24))\n"
      "im.putdata([(x * 6, y * 10, 230 - x * 5) for y in range(24) for x in range(40)])\n"
      "im.save(sys.argv[1] + \"/rgb.png\")\n"
      "im.convert(\"CMYK\").save(sys.argv[1] + \"/cmyk.jpg\", quality=100)\n"
      "im.convert(\"CMYK\").save(sys.argv[1] + \"/cmyk.tif\")\n"
      "assert Image.open(sys.argv[1] + \"/cmyk.jpg\").mode == \"CMYK\"\n"
      "' " +
      dir + " 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

TEST_F(LimitsTest, CmykJpegIsReadAsTheRgbItEncodes) {
  if (std::system("/usr/bin/python3 -c 'import PIL' 2>/dev/null") != 0) {
    GTEST_SKIP()
        << "/usr/bin/python3 with PIL absent (apt-get install python3-pil): no CMYK JPEG to read";
  }
  ASSERT_TRUE(MakeCmykFiles(root_));
  const Image rgb = ReadImage(Path("rgb.png"));
  for (const std::string name : {"cmyk.jpg", "cmyk.tif"}) {
    const Image img = ReadImage(Path(name));
    ASSERT_EQ(img.channels, 3) << name;
    ASSERT_EQ(img.height, 24);
    ASSERT_EQ(img.width, 40);
    double max_err = 0, sum_err = 0;
    for (size_t i = 0; i < rgb.data.size(); ++i) {
      const double e = std::fabs(img.data[i] - rgb.data[i]);
      max_err = std::max(max_err, e);
      sum_err += e;
    }
    // JPEG at quality 100 with chroma subsampling: a few levels at most on this smooth gradient.
    EXPECT_LE(max_err, 12.0) << name;
    EXPECT_LE(sum_err / static_cast<double>(rgb.data.size()), 2.0) << name;
  }
}

}  // namespace
}  // namespace dippas
