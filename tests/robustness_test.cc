// Hardening of the file layer: disk-full faults (through the DIPPAS_FAULT_WRITE_LIMIT hook)
// leave earlier outputs and pools untouched and no temporary behind; the signal-time cleanup
// removes temporaries in flight; crafted .npy headers and YAML streams that used to crash or
// hang are refused with a message; and every seed of the fuzz corpora (fuzz/corpus/) parses
// or is refused cleanly, so the fuzzers' findings stay fixed in the ordinary test run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dippas/dip/config.h"
#include "dippas/eval/dataset.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/image.h"
#include "dippas/io/npy.h"
#include "dippas/io/pool.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

class RobustnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dippas_robustness_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    unsetenv("DIPPAS_FAULT_WRITE_LIMIT");
  }
  void TearDown() override {
    unsetenv("DIPPAS_FAULT_WRITE_LIMIT");
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static std::string Slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Every entry of `dir`, sorted (temporaries are hidden files: listed too).
  static std::vector<std::string> Names(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  // The message of the IoError `f` throws ("" and a test failure if it throws none).
  template <typename F>
  static std::string IoErrorOf(F&& f) {
    try {
      f();
    } catch (const IoError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected an IoError";
    return "";
  }

  static std::vector<uint8_t> Frame(int64_t h, int64_t w, int i) {
    std::vector<uint8_t> f(static_cast<size_t>(h * w * 3));
    for (size_t k = 0; k < f.size(); ++k) f[k] = static_cast<uint8_t>((k * 13 + i * 7) % 256);
    return f;
  }

  static void WritePool(const std::string& dir, int frames) {
    PoolWriter w(dir, 8, 8, {{"image", "a.png"}});
    for (int i = 0; i < frames; ++i) w.Append(Frame(8, 8, i).data(), {{"iteration", i}});
    w.Close();
  }

  std::string root_;
};

// --- disk full, through the write-fault hook -------------------------------------------------

TEST_F(RobustnessTest, DiskFullKeepsTheEarlierOutputAndLeavesNoTemporary) {
  const std::string path = root_ + "/out.json";
  WriteFileAtomic(path, "old, complete\n");
  setenv("DIPPAS_FAULT_WRITE_LIMIT", "100", 1);
  const std::string msg = IoErrorOf([&] { WriteFileAtomic(path, std::string(1000, 'x')); });
  EXPECT_NE(msg.find(path + ": write failed: No space left on device"), std::string::npos) << msg;
  EXPECT_EQ(Slurp(path), "old, complete\n");
  EXPECT_EQ(Names(root_), std::vector<std::string>{"out.json"});
  unsetenv("DIPPAS_FAULT_WRITE_LIMIT");
  WriteFileAtomic(path, "new\n");  // space is back
  EXPECT_EQ(Slurp(path), "new\n");
}

TEST_F(RobustnessTest, FaultBudgetIsPerProcessAndRestartsWithANewValue) {
  setenv("DIPPAS_FAULT_WRITE_LIMIT", "2000", 1);
  WriteFileAtomic(root_ + "/a", std::string(1500, 'a'));
  EXPECT_THROW(WriteFileAtomic(root_ + "/b", std::string(1500, 'b')), IoError);  // 3000 > 2000
  setenv("DIPPAS_FAULT_WRITE_LIMIT", "2001", 1);
  WriteFileAtomic(root_ + "/b", std::string(1500, 'b'));
  EXPECT_EQ(Names(root_), (std::vector<std::string>{"a", "b"}));
  setenv("DIPPAS_FAULT_WRITE_LIMIT", "lots", 1);  // a malformed hook value fails loudly
  EXPECT_NE(IoErrorOf([&] { WriteFileAtomic(root_ + "/c", "c"); }).find("Invalid argument"),
            std::string::npos);
}

TEST_F(RobustnessTest, DiskFullWhileStreamingThePoolKeepsTheOlderPool) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 2);
  const std::string npy = Slurp(dir + "/pool.npy"), json = Slurp(dir + "/pool.json");
  setenv("DIPPAS_FAULT_WRITE_LIMIT", "400", 1);  // the 128-byte header and one 192-byte frame
  {
    PoolWriter w(dir, 8, 8, {{"image", "b.png"}});
    w.Append(Frame(8, 8, 5).data(), {{"iteration", 1}});
    const std::string msg = IoErrorOf([&] { w.Append(Frame(8, 8, 6).data(), {{"iteration", 2}}); });
    EXPECT_NE(msg.find(dir + "/pool.npy: write failed (candidate 1): No space left on device"),
              std::string::npos)
        << msg;
  }  // abandoned, as anonymize does when the error propagates
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"pool.json", "pool.npy"}));
  EXPECT_EQ(Slurp(dir + "/pool.npy"), npy);
  EXPECT_EQ(Slurp(dir + "/pool.json"), json);
}

TEST_F(RobustnessTest, DiskFullWhileClosingThePoolKeepsTheOlderPool) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 2);
  const std::string json = Slurp(dir + "/pool.json");
  setenv("DIPPAS_FAULT_WRITE_LIMIT", "500", 1);  // frames fit, pool.json does not
  PoolWriter w(dir, 8, 8, {{"image", "b.png"}});
  w.Append(Frame(8, 8, 5).data(), {{"iteration", 1}});
  const std::string msg = IoErrorOf([&] { w.Close(); });
  EXPECT_NE(msg.find(dir + "/pool.json: write failed"), std::string::npos) << msg;
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"pool.json", "pool.npy"}));
  EXPECT_EQ(Slurp(dir + "/pool.json"), json);
  unsetenv("DIPPAS_FAULT_WRITE_LIMIT");
  EXPECT_EQ(PoolReader(dir).count(), 2);
}

// --- a second signal: temporaries in flight are removed before _exit ---------------------------

TEST_F(RobustnessTest, RemoveTemporaryFilesDeletesOnlyRegisteredOnes) {
  const std::string a = root_ + "/.a.tmp-1", b = root_ + "/.b.tmp-2", keep = root_ + "/keep";
  for (const auto& p : {a, b, keep}) std::ofstream(p) << "x";
  const int ha = RegisterTemporaryFile(a);
  const int hb = RegisterTemporaryFile(b);
  ASSERT_GE(ha, 0);
  ASSERT_GE(hb, 0);
  UnregisterTemporaryFile(hb);  // b was renamed into place (say): not a temporary any more
  RemoveTemporaryFiles();
  UnregisterTemporaryFile(ha);
  EXPECT_EQ(Names(root_), (std::vector<std::string>{".b.tmp-2", "keep"}));
  EXPECT_EQ(RegisterTemporaryFile(std::string(5000, 'x')), -1);  // too long: refused, no overflow
}

// What `dippas anonymize` does on a second Ctrl-C, in a child process: a pool is being streamed
// when the signal arrives; the handler removes the temporaries and exits at once.
void ExitAtOnce(int) {
  RemoveTemporaryFiles();
  _exit(130);
}

TEST_F(RobustnessTest, SignalWhileStreamingLeavesNoPartialPool) {
  const std::string dir = root_ + "/pool";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGTERM, ExitAtOnce);
    PoolWriter w(dir, 8, 8, {{"image", "a.png"}});
    w.Append(Frame(8, 8, 0).data(), {{"iteration", 0}});
    raise(SIGTERM);
    _exit(0);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_TRUE(Names(dir).empty()) << Names(dir).front();
}

// --- crafted .npy headers (found by fuzz/fuzz_npy.cc, or close to what it found) ----------------

std::string NpyV2(const std::string& dict, const std::string& data) {
  std::string header = dict + "\n";
  std::string out("\x93NUMPY\x02\x00", 8);
  const uint32_t n = static_cast<uint32_t>(header.size());
  for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST_F(RobustnessTest, NpyHeaderThatOverflowedTheRegexStackIsRefused) {
  // std::regex recursed once per character: 100 kB of spaces in a quoted value was a segfault.
  const std::string dict =
      "{'descr': '<f4" + std::string(200000, ' ') + "', 'fortran_order': False, 'shape': (1, 1), }";
  try {
    ParseNpy(NpyV2(dict, std::string(4, '\0')), "long.npy");
    FAIL() << "accepted";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("long.npy: not a valid .npy file: unsupported dtype"),
              std::string::npos);
  }
  const std::string digits(300000, '7');  // one endless dimension
  EXPECT_THROW(ParseNpy(NpyV2("{'descr': '<f4', 'fortran_order': False, 'shape': (" + digits + ", 1), }", ""),
                        "x.npy"),
               IoError);
  EXPECT_THROW(ParseNpy(NpyV2(std::string((1 << 20) + 1, ' '), ""), "x.npy"), IoError);  // > 1 MiB
}

TEST_F(RobustnessTest, NpyShapesThatOverflowAreRefused) {
  for (const std::string shape : {"(4294967296, 4294967296)", "(999999999999999999, 999999999999999999)",
                                  "(9999999999999999999999, 1)"}) {
    try {
      ParseNpy(NpyV2("{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }", ""), "big.npy");
      ADD_FAILURE() << shape << " accepted";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("big.npy"), std::string::npos) << e.what();
    }
  }
  // An empty array is not an error of the parser (the CLI refuses it as all zeros).
  const Array2D empty = ParseNpy(NpyV2("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", ""), "e.npy");
  EXPECT_EQ(empty.rows, 0);
  EXPECT_EQ(empty.cols, 5);
  EXPECT_TRUE(empty.data.empty());
}

TEST_F(RobustnessTest, PoolWithACraftedHeaderIsRefused) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 1);
  const std::string dict = "{'descr': '|u1" + std::string(200000, ' ') +
                           "', 'fortran_order': False, 'shape': (1, 8, 8, 3), }";
  std::ofstream(dir + "/pool.npy", std::ios::binary) << NpyV2(dict, std::string(192, '\0'));
  const std::string msg = IoErrorOf([&] { PoolReader r(dir); });
  EXPECT_NE(msg.find(dir + "/pool.npy: not a valid pool .npy: dtype"), std::string::npos) << msg;
}

// --- YAML streams that hang yaml-cpp's LoadAll (found by fuzz/fuzz_config.cc) -------------------

TEST_F(RobustnessTest, ConfigThatHungYamlCppIsASyntaxError) {
  // yaml-cpp 0.7's LoadAll loops for ever, allocating, on these (jbeder/yaml-cpp#1040).
  for (const std::string text : {",", ",\n", ", 32]", "top: 3\n---\n,"}) {
    try {
      ParseDipConfig(text, "hang.yaml");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("hang.yaml: syntax error at line"), std::string::npos) << e.what();
    }
  }
  // Deep nesting stops at yaml-cpp's depth guard instead of the end of the stack.
  EXPECT_THROW(ParseDipConfig(std::string(100000, '[') + std::string(100000, ']'), "deep.yaml"), ConfigError);
  // Still one document, and still a count of them.
  EXPECT_EQ(ParseDipConfig("---\ntop: 3\n", "one.yaml").top, 3);
  EXPECT_THROW(ParseDipConfig("top: 3\n---\ntop: 4\n", "two.yaml"), ConfigError);
  EXPECT_EQ(ParseDipConfig("", "empty.yaml").top, DipOptions{}.top);
}

// --- the fuzz corpora, replayed ----------------------------------------------------------------

std::vector<fs::path> CorpusFiles(const std::string& name) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(DIPPAS_SOURCE_DIR) / "fuzz" / "corpus" / name;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(RobustnessTest, NpyCorpusParsesOrIsRefused) {
  const auto files = CorpusFiles("npy");
  ASSERT_GE(files.size(), 10u);
  int parsed = 0;
  for (const auto& f : files) {
    try {
      const Array2D a = ReadNpy(f.string());
      EXPECT_EQ(a.data.size(), static_cast<size_t>(a.rows * a.cols)) << f;
      ++parsed;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(f.string()), std::string::npos) << e.what();
    }
  }
  EXPECT_GE(parsed, 6);  // the v1/v2/v3, C/Fortran, f4/f8/u1 seeds
  // The Fortran-ordered seed (numpy's np.asfortranarray) reads as the C-ordered one.
  const fs::path dir = fs::path(DIPPAS_SOURCE_DIR) / "fuzz" / "corpus" / "npy";
  EXPECT_EQ(ReadNpy((dir / "v1_f4_c.npy").string()).data, ReadNpy((dir / "v3_f4_fortran.npy").string()).data);
  EXPECT_EQ(ReadNpy((dir / "v1_f4_c.npy").string()).data, ReadNpy((dir / "v1_f8_fortran.npy").string()).data);
}

TEST_F(RobustnessTest, ConfigCorpusParsesOrIsRefused) {
  const auto files = CorpusFiles("config");
  ASSERT_GE(files.size(), 10u);
  for (const auto& f : files) {
    try {
      LoadDipConfig(f.string()).Check();
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(f.string(), 0), 0u) << e.what();
    }
  }
}

TEST_F(RobustnessTest, ImageCorpusDecodesOrIsRefused) {
  const auto files = CorpusFiles("image");
  ASSERT_GE(files.size(), 10u);
  int decoded = 0;
  for (const auto& f : files) {
    try {
      const Image img = ReadImage(f.string());
      EXPECT_TRUE(img.channels == 1 || img.channels == 3) << f;
      EXPECT_EQ(img.data.size(), static_cast<size_t>(img.height * img.width * img.channels)) << f;
      ++decoded;
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(f.string(), 0), 0u) << e.what();
    }
  }
  EXPECT_GE(decoded, 12);  // the PNG, JPEG, TIFF and BMP seeds
}

// Pool seeds: pool.json, a NUL byte, pool.npy (fuzz/fuzz_pool.cc's input format).
TEST_F(RobustnessTest, PoolCorpusReadsOrIsRefused) {
  const auto files = CorpusFiles("pool");
  ASSERT_GE(files.size(), 5u);
  int read = 0;
  for (const auto& f : files) {
    const std::string bytes = Slurp(f.string());
    const size_t cut = bytes.find('\0');
    const std::string dir = root_ + "/" + f.filename().string();
    fs::create_directory(dir);
    std::ofstream(dir + "/pool.json", std::ios::binary) << bytes.substr(0, cut);
    std::ofstream(dir + "/pool.npy", std::ios::binary)
        << (cut == std::string::npos ? "" : bytes.substr(cut + 1));
    try {
      PoolReader reader(dir);
      for (int64_t i = 0; i < reader.count(); ++i) {
        EXPECT_EQ(reader.Read(i).size(), static_cast<size_t>(reader.height() * reader.width() * 3));
      }
      ++read;
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(dir, 0), 0u) << e.what();
    }
  }
  EXPECT_GE(read, 3);  // two_4x5, one_3x3, empty_2x2
}

// Manifest seeds, in a folder holding the files they name (as fuzz/fuzz_manifest.cc sets up).
TEST_F(RobustnessTest, ManifestCorpusReadsOrIsRefused) {
  const auto files = CorpusFiles("manifest");
  ASSERT_GE(files.size(), 5u);
  fs::create_directory(root_ + "/sub");
  for (const char* name : {"a.png", "b.png", "K.npy", "L.npy", "sub/c.png"})
    std::ofstream(root_ + "/" + name) << "x";
  int read = 0;
  for (const auto& f : files) {
    const std::string path = root_ + "/" + f.filename().string();
    fs::copy_file(f, path);
    for (const std::string& fps : {std::string(), root_}) {
      try {
        const Dataset ds = ReadManifest(path, fps, false);
        EXPECT_FALSE(ds.items.empty());
        for (const auto& item : ds.items)
          EXPECT_TRUE(fs::is_regular_file(item.original)) << item.original;
        ++read;
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(path, 0), 0u) << e.what();
      }
    }
  }
  EXPECT_GE(read, 4);  // basic, quoted, fpdir (with the folder), basic with the folder
}

}  // namespace
}  // namespace dippas
