// MATLAB .mat fingerprints (dippas/io/mat.h) against files written by an independent writer:
// scipy.io.savemat, level 5 plain and compressed, float64 and float32, one and several
// variables, and the values numpy saved beside them as .npy. Skipped without scipy or libmatio.
#include "dippas/io/mat.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace dippas {
namespace {

namespace fs = std::filesystem;

// Non-square and non-symmetric, so a transposed read cannot pass; a(0,1) and a(1,0) are
// planted to say which way round the rows go.
const char* kWriter = R"PY(
import sys, numpy as np, scipy.io as sio, scipy.sparse as sp
d = sys.argv[1]
rng = np.random.default_rng(20261129)
a = rng.standard_normal((37, 53))
a[0, 1], a[1, 0] = 1.5, -2.25
np.save(d + '/a64.npy', a)
np.save(d + '/a32.npy', a.astype(np.float32))
sio.savemat(d + '/v5.mat', {'prnu': a})
sio.savemat(d + '/v5z.mat', {'prnu': a}, do_compression=True)
sio.savemat(d + '/f32.mat', {'Fingerprint': a.astype(np.float32)})
sio.savemat(d + '/f32z.mat', {'Fingerprint': a.astype(np.float32)}, do_compression=True)
sio.savemat(d + '/several.mat', {'prnu': a, 'other': rng.standard_normal((3, 4))},
            do_compression=True)
sio.savemat(d + '/cube.mat', {'k': rng.standard_normal((4, 5, 3))})
sio.savemat(d + '/complex.mat', {'k': a + 1j * a})
sio.savemat(d + '/text.mat', {'k': 'not numbers'})
sio.savemat(d + '/cell.mat', {'k': np.array([[1.0, 'x']], dtype=object)})
sio.savemat(d + '/int.mat', {'k': np.arange(12, dtype=np.int32).reshape(3, 4)})
sio.savemat(d + '/sparse.mat', {'k': sp.csc_matrix(a)})
sio.savemat(d + '/empty.mat', {'k': np.zeros((0, 4))})
raw = open(d + '/v5z.mat', 'rb').read()
open(d + '/truncated.mat', 'wb').write(raw[:len(raw) // 2])
open(d + '/truncated_plain.mat', 'wb').write(open(d + '/v5.mat', 'rb').read()[:-1000])
damaged = bytearray(raw)
damaged[400:420] = b'x' * 20  # inside the compressed stream, the file size unchanged
open(d + '/damaged.mat', 'wb').write(bytes(damaged))
open(d + '/garbage.mat', 'wb').write(b'this is not a MATLAB file\n' * 20)
)PY";

class MatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!MatSupported()) GTEST_SKIP() << "built without libmatio (apt-get install libmatio-dev)";
    if (std::system("/usr/bin/python3 -c 'import scipy.io' >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "/usr/bin/python3 with scipy absent (apt-get install python3-scipy)";
    dir_ = (fs::temp_directory_path() / ("dippas_mat_" + std::to_string(getpid()))).string();
    fs::create_directories(dir_);
    std::ofstream(dir_ + "/write.py") << kWriter;
    const std::string cmd = "/usr/bin/python3 " + dir_ + "/write.py " + dir_;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  void TearDown() override {
    SetMatVariable("");
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // The message of the IoError ReadMat throws (empty when it does not).
  std::string Error(const std::string& name, const std::string& var = "") const {
    try {
      ReadMat(Path(name), var);
    } catch (const IoError& e) {
      return e.what();
    }
    return "";
  }

  std::string dir_;
};

void ExpectSame(const Array2D& got, const Array2D& want, const std::string& what) {
  ASSERT_EQ(got.rows, want.rows) << what;
  ASSERT_EQ(got.cols, want.cols) << what;
  ASSERT_EQ(got.data.size(), want.data.size()) << what;
  for (size_t i = 0; i < want.data.size(); ++i)
    ASSERT_EQ(got.data[i], want.data[i]) << what << " at element " << i;
}

TEST_F(MatTest, Level5DoublePlainAndCompressedMatchNumpy) {
  const Array2D want = ReadNpy(Path("a64.npy"));  // float64 → float32, as ReadMat converts
  ASSERT_EQ(want.rows, 37);
  for (const std::string name : {"v5.mat", "v5z.mat"}) {
    const Array2D got = ReadMat(Path(name));
    ExpectSame(got, want, name);
    EXPECT_EQ(got.data[0 * got.cols + 1], 1.5f) << name << ": a(0,1) (rows and columns swapped?)";
    EXPECT_EQ(got.data[1 * got.cols + 0], -2.25f) << name << ": a(1,0)";
  }
}

TEST_F(MatTest, SingleMatchesNumpyFloat32) {
  const Array2D want = ReadNpy(Path("a32.npy"));
  for (const std::string name : {"f32.mat", "f32z.mat"})
    ExpectSame(ReadMat(Path(name)), want, name);
  EXPECT_EQ(MatVariableNames(Path("f32.mat")), std::vector<std::string>{"Fingerprint"});
}

TEST_F(MatTest, SeveralVariablesNeedAName) {
  const std::string e = Error("several.mat");
  EXPECT_NE(e.find(Path("several.mat")), std::string::npos) << e;
  EXPECT_NE(e.find("prnu"), std::string::npos) << e;
  EXPECT_NE(e.find("other"), std::string::npos) << e;
  EXPECT_NE(e.find("--mat-var"), std::string::npos) << e;
  ExpectSame(ReadMat(Path("several.mat"), "prnu"), ReadNpy(Path("a64.npy")), "several.mat:prnu");
  EXPECT_EQ(ReadMat(Path("several.mat"), "other").rows, 3);
  const std::string missing = Error("several.mat", "K");
  EXPECT_NE(missing.find("no variable 'K'"), std::string::npos) << missing;
  EXPECT_NE(missing.find("other"), std::string::npos) << missing;
}

TEST_F(MatTest, FingerprintLoaderDispatchesOnTheExtension) {
  SetMatVariable("prnu");
  ExpectSame(ReadFingerprintArray(Path("several.mat")), ReadNpy(Path("a64.npy")), "dispatch");
  fs::copy_file(Path("v5.mat"), Path("UPPER.MAT"));
  SetMatVariable("");
  ExpectSame(ReadFingerprintArray(Path("UPPER.MAT")), ReadNpy(Path("a64.npy")), "UPPER.MAT");
  ExpectSame(ReadFingerprintArray(Path("a32.npy")), ReadNpy(Path("a32.npy")), ".npy");
  // FPS/<device>.npy first, else .mat.
  fs::create_directories(Path("fps"));
  fs::copy_file(Path("v5.mat"), Path("fps/cam.mat"));
  EXPECT_EQ(DeviceFingerprintPath(Path("fps"), "cam"), Path("fps/cam.mat"));
  fs::copy_file(Path("a32.npy"), Path("fps/cam.npy"));
  EXPECT_EQ(DeviceFingerprintPath(Path("fps"), "cam"), Path("fps/cam.npy"));
  EXPECT_EQ(DeviceFingerprintPath(Path("fps"), "none"), Path("fps/none.npy"));
}

TEST_F(MatTest, WhatIsNotARealTwoDimensionalArrayIsRefused) {
  const std::pair<const char*, const char*> cases[] = {{"cube.mat", "3 dimensions"},
                                                       {"complex.mat", "complex"},
                                                       {"text.mat", "text"},
                                                       {"cell.mat", "cell array"},
                                                       {"int.mat", "double or single"},
                                                       {"sparse.mat", "sparse"},
                                                       {"empty.mat", "empty"},
                                                       {"truncated.mat", "truncated"},
                                                       {"truncated_plain.mat", "truncated"},
                                                       {"damaged.mat", "corrupt"},
                                                       {"garbage.mat", ""},
                                                       {"nonexistent.mat", "no such file"}};
  for (const auto& [name, words] : cases) {
    const std::string e = Error(name);
    ASSERT_FALSE(e.empty()) << name << " was read";
    EXPECT_EQ(e.rfind(Path(name), 0), 0u)
        << name << ": the message must start with the file: " << e;
    EXPECT_NE(e.find(words), std::string::npos) << name << ": " << e;
  }
}

// Built without libmatio, a .mat fingerprint is refused with an error that says why.
TEST(MatBuildTest, ABuildWithoutLibmatioSaysSo) {
  const std::string path =
      (fs::temp_directory_path() / ("dippas_nomat_" + std::to_string(getpid()) + ".mat")).string();
  std::ofstream(path) << "MATLAB 5.0 MAT-file";
  std::string error;
  try {
    ReadFingerprintArray(path);
  } catch (const IoError& e) {
    error = e.what();
  }
  fs::remove(path);
  ASSERT_EQ(error.rfind(path, 0), 0u) << error;
  if (!MatSupported()) {
    EXPECT_NE(error.find("this build cannot read .mat files"), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace dippas
