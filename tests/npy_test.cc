// .npy parsing: good files of every accepted kind, and each bad kind refused
// with a message naming the file and the reason.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "dippas/io/npy.h"

namespace dippas {
namespace {

std::string Header(const std::string& dict, int major = 1) {
  std::string d = dict;
  const size_t pre = major == 1 ? 10 : 12;
  d.append((64 - (pre + d.size() + 1) % 64) % 64, ' ');
  d.push_back('\n');
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  if (major == 1) {
    out.push_back(static_cast<char>(d.size() & 0xff));
    out.push_back(static_cast<char>(d.size() >> 8));
  } else {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((d.size() >> (8 * i)) & 0xff));
  }
  return out + d;
}

template <typename T>
std::string Payload(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string ErrorOf(const std::string& bytes) {
  try {
    ParseNpy(bytes, "x.npy");
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

TEST(Npy, ReadsFloat32Float64Uint8) {
  auto f4 = ParseNpy(Header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") +
                         Payload<float>({1, 2, 3, 4, 5, 6}),
                     "a");
  EXPECT_EQ(f4.rows, 2);
  EXPECT_EQ(f4.cols, 3);
  EXPECT_FLOAT_EQ(f4.data[5], 6);
  auto f8 = ParseNpy(Header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1, 1), }", 2) +
                         Payload<double>({0.25, -1.5}),
                     "b");
  EXPECT_EQ(f8.rows, 2);
  EXPECT_EQ(f8.cols, 1);
  EXPECT_FLOAT_EQ(f8.data[1], -1.5f);
  auto u1 = ParseNpy(Header("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2), }", 3) +
                         Payload<unsigned char>({7, 255}),
                     "c");
  EXPECT_FLOAT_EQ(u1.data[1], 255.f);
}

TEST(Npy, ReadsFortranOrderTransposed) {
  // numpy: np.asfortranarray([[1,2,3],[4,5,6]]) stores 1,4,2,5,3,6.
  auto f = ParseNpy(Header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }") +
                        Payload<float>({1, 4, 2, 5, 3, 6}),
                    "f");
  EXPECT_EQ(f.data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  auto d = ParseNpy(Header("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }") +
                        Payload<double>({1, 4, 2, 5, 3, 6}),
                    "d");
  EXPECT_EQ(d.data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(Npy, RoundTrip) {
  Array2D a{3, 2, {1.5f, -2, 3, 4e-3f, 5, 6}};
  auto b = ParseNpy(SerializeNpy(a), "rt");
  EXPECT_EQ(b.rows, 3);
  EXPECT_EQ(b.cols, 2);
  EXPECT_EQ(b.data, a.data);
  // Header length keeps the data 64-byte aligned, as numpy writes it.
  EXPECT_EQ((SerializeNpy(a).size() - 24) % 64, 0u);
}

TEST(Npy, RefusesBadInput) {
  const std::string good = Header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }");
  EXPECT_NE(ErrorOf("hello world, not numpy").find("bad magic"), std::string::npos);
  EXPECT_NE(ErrorOf(good + Payload<float>({1, 2})).find("truncated data"), std::string::npos);
  EXPECT_NE(ErrorOf(good.substr(0, 20)).find("truncated header"), std::string::npos);
  EXPECT_NE(ErrorOf(Header("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }") + Payload<int>({1, 2, 3, 4}))
                .find("unsupported dtype"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Header("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }") + Payload<float>({1, 2, 3, 4}))
                .find("unsupported dtype"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 3), }") +
                    Payload<float>(std::vector<float>(12)))
                .find("shape (2, 2, 3)"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }") + Payload<float>({1, 2, 3, 4}))
                .find("shape"),
            std::string::npos);
  EXPECT_NE(ErrorOf("hello").find("x.npy"), std::string::npos);  // names the file
}

TEST(Npy, MissingFileAndDirectoryNamed) {
  try {
    ReadNpy("/nonexistent/k.npy");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/k.npy: no such file"), std::string::npos);
  }
  EXPECT_THROW(ReadNpy(std::filesystem::temp_directory_path().string()), IoError);
}

TEST(Npy, WriteIsAtomicAndRefusesMissingFolder) {
  const auto dir = std::filesystem::temp_directory_path() / ("dippas_npy_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "k.npy").string();
  WriteNpy(path, Array2D{1, 2, {1, 2}});
  EXPECT_THROW(WriteNpy((dir / "missing" / "k.npy").string(), Array2D{1, 1, {1}}), IoError);
  // No temporary left beside the output.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_EQ(ReadNpy(path).data, (std::vector<float>{1, 2}));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dippas
