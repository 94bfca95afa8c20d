// The candidate pool on disk: PoolWriter/PoolReader round trip, nothing left behind by an
// abandoned writer, a private folder, and refusal of damaged pools naming the file.
#include "dippas/io/pool.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dippas/io/npy.h"
#include "fs_util.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the temp dir, removed at the end of the test.
class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dippas_pool_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Frame i: a deterministic pattern distinct per frame and per pixel.
  static std::vector<uint8_t> Frame(int64_t h, int64_t w, int i) {
    std::vector<uint8_t> f(static_cast<size_t>(h * w * 3));
    for (size_t k = 0; k < f.size(); ++k) f[k] = static_cast<uint8_t>((k * 7 + i * 31) % 256);
    return f;
  }

  static nlohmann::json Meta() {
    return {{"image", "photo.png"}, {"mode", "aware"}, {"prnu", "K.npy"}, {"sigma", 3.0}};
  }

  // Writes a pool of n frames of h×w into dir.
  static void WritePool(const std::string& dir, int64_t h, int64_t w, int n) {
    PoolWriter writer(dir, h, w, Meta());
    for (int i = 0; i < n; ++i) {
      writer.Append(
          Frame(h, w, i).data(),
          {{"iteration", 100 + i}, {"psnr", 38.5 + i}, {"loss", 0.01 / (i + 1)}, {"gamma", 0.5}});
    }
    writer.Close();
  }

  static std::vector<std::string> Names(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  // Expects an IoError whose message contains `needle`.
  template <typename F>
  static void ExpectIoError(F&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "expected IoError mentioning " << needle;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }

  std::string root_;
};

TEST_F(PoolTest, RoundTrip) {
  const std::string dir = root_ + "/pool";
  const int64_t h = 5, w = 7;
  WritePool(dir, h, w, 4);
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"pool.json", "pool.npy"}));

  PoolReader reader(dir);
  EXPECT_EQ(reader.count(), 4);
  EXPECT_EQ(reader.height(), h);
  EXPECT_EQ(reader.width(), w);
  const auto& index = reader.index();
  EXPECT_EQ(index["image"], "photo.png");
  EXPECT_EQ(index["mode"], "aware");
  EXPECT_EQ(index["prnu"], "K.npy");
  EXPECT_EQ(index["sigma"], 3.0);
  EXPECT_EQ(index["size"], nlohmann::json({h, w}));
  EXPECT_EQ(index["complete"], true);
  ASSERT_EQ(index["candidates"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const auto& c = index["candidates"][i];
    EXPECT_EQ(c["index"], i);
    EXPECT_EQ(c["iteration"], 100 + i);
    EXPECT_DOUBLE_EQ(c["psnr"].get<double>(), 38.5 + i);
  }
  // Out of order on purpose: each Read seeks to its own frame.
  for (int i : {2, 0, 3, 1}) EXPECT_EQ(reader.Read(i), Frame(h, w, i)) << "frame " << i;
  EXPECT_THROW(reader.Read(4), std::out_of_range);
  EXPECT_THROW(reader.Read(-1), std::out_of_range);

  // Header of a fixed size, a multiple of 64, so N was rewritten in place.
  std::ifstream in(dir + "/pool.npy", std::ios::binary);
  std::string head(128, '\0');
  in.read(head.data(), 128);
  EXPECT_EQ(head.substr(1, 5), "NUMPY");
  const size_t header_len =
      static_cast<unsigned char>(head[8]) | (static_cast<unsigned char>(head[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_NE(head.find("(4, 5, 7, 3)"), std::string::npos) << head;
  EXPECT_EQ(fs::file_size(dir + "/pool.npy"), 10 + header_len + 4 * h * w * 3);
}

TEST_F(PoolTest, EmptyPoolIsValid) {
  const std::string dir = root_ + "/empty";
  WritePool(dir, 3, 3, 0);
  PoolReader reader(dir);
  EXPECT_EQ(reader.count(), 0);
  EXPECT_EQ(reader.index()["candidates"].size(), 0u);
}

TEST_F(PoolTest, DestructorWithoutCloseLeavesNothing) {
  const std::string dir = root_ + "/abandoned";
  {
    PoolWriter writer(dir, 4, 4, Meta());
    writer.Append(Frame(4, 4, 0).data(), {{"iteration", 1}, {"psnr", 40.0}});
    EXPECT_EQ(writer.count(), 1);
    EXPECT_FALSE(Names(dir).empty());  // its temporaries exist while it runs
    EXPECT_FALSE(fs::exists(dir + "/pool.json"));
    EXPECT_FALSE(fs::exists(dir + "/pool.npy"));
  }
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_TRUE(Names(dir).empty()) << Names(dir)[0];
}

// A checkpointed run: the spool outlives the writer, a new writer resumes at the checkpoint's
// count (later frames dropped: the resumed loop makes them again), and Close gives the pool an
// uninterrupted writer would have given.
TEST_F(PoolTest, ResumableSpoolContinuesFromAState) {
  const std::string dir = root_ + "/pool", spool = dir + "/" + PoolWriter::kPartialName;
  const int64_t h = 3, w = 5;
  auto record = [](int i) { return nlohmann::json{{"iteration", 10 + i}, {"psnr", 39.0 + i}}; };
  nlohmann::json state;
  {
    PoolWriter writer(dir, h, w, Meta(), PoolSpool::kResumable);
    for (int i = 0; i < 3; ++i) writer.Append(Frame(h, w, i).data(), record(i));
    state = writer.ResumeState();
    for (int i = 3; i < 5; ++i) writer.Append(Frame(h, w, 90 + i).data(), record(90 + i));
  }  // interrupted: no pool, the spool kept
  EXPECT_EQ(Names(dir), (std::vector<std::string>{PoolWriter::kPartialName}));
  EXPECT_EQ(state["count"], 3);
  ASSERT_EQ(state["candidates"].size(), 3u);
  {
    PoolWriter writer(dir, h, w, Meta(), PoolSpool::kResumable);
    writer.ResumeFrom(state);
    EXPECT_EQ(writer.count(), 3);
    writer.Append(Frame(h, w, 3).data(), record(3));
    writer.Close();
  }
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"pool.json", "pool.npy"}));
  PoolReader reader(dir);
  ASSERT_EQ(reader.count(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(reader.Read(i), Frame(h, w, i)) << "frame " << i;
    EXPECT_EQ(reader.index()["candidates"][i]["index"], i);
    EXPECT_EQ(reader.index()["candidates"][i]["iteration"], 10 + i);
  }
  // A fresh (not resumed) run over a longer old spool: overwritten, cut to its own frames.
  {
    for (int n : {5, 1}) {
      PoolWriter writer(dir + "2", h, w, Meta(), PoolSpool::kResumable);
      for (int i = 0; i < n; ++i) writer.Append(Frame(h, w, 50 + i).data(), record(i));
      if (n == 1) writer.Close();
    }
    PoolReader fresh(dir + "2");
    ASSERT_EQ(fresh.count(), 1);
    EXPECT_EQ(fresh.Read(0), Frame(h, w, 50));
  }
}

// A state that asks for more frames than the spool holds (another folder, a lost spool) is an
// error naming the spool; a malformed state is refused; a temporary writer cannot resume.
TEST_F(PoolTest, ResumeRefusesASpoolWithoutTheFrames) {
  const std::string dir = root_ + "/pool";
  nlohmann::json state;
  {
    PoolWriter writer(dir, 4, 4, Meta(), PoolSpool::kResumable);
    for (int i = 0; i < 2; ++i) writer.Append(Frame(4, 4, i).data(), {{"iteration", i}});
    state = writer.ResumeState();
  }
  {
    PoolWriter elsewhere(root_ + "/other", 4, 4, Meta(), PoolSpool::kResumable);
    ExpectIoError([&] { elsewhere.ResumeFrom(state); },
                  root_ + "/other/" + PoolWriter::kPartialName + ": holds 0 candidates");
  }
  {
    PoolWriter bigger(dir, 8, 8, Meta(), PoolSpool::kResumable);  // 2 frames of 4×4 < 1 of 8×8
    ExpectIoError([&] { bigger.ResumeFrom(state); }, "holds 0 candidates of 8x8, the checkpoint 2");
  }
  PoolWriter writer(dir, 4, 4, Meta(), PoolSpool::kResumable);
  nlohmann::json bad = state;
  bad["count"] = 3;
  EXPECT_THROW(writer.ResumeFrom(bad), std::invalid_argument);
  EXPECT_THROW(writer.ResumeFrom(nlohmann::json::array()), std::invalid_argument);
  PoolWriter temporary(root_ + "/t", 4, 4, Meta());
  EXPECT_THROW(temporary.ResumeState(), std::logic_error);
  EXPECT_THROW(temporary.ResumeFrom(state), std::logic_error);
}

TEST_F(PoolTest, AbandonedWriterKeepsAnOlderPool) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 4, 4, 2);
  {
    PoolWriter writer(dir, 4, 4, Meta());
    writer.Append(Frame(4, 4, 9).data(), {{"iteration", 1}, {"psnr", 40.0}});
  }
  PoolReader reader(dir);
  EXPECT_EQ(reader.count(), 2);
  EXPECT_EQ(reader.Read(1), Frame(4, 4, 1));
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"pool.json", "pool.npy"}));
}

TEST_F(PoolTest, ClosingReplacesAnOlderPool) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 4, 4, 3);
  WritePool(dir, 4, 4, 1);
  PoolReader reader(dir);
  EXPECT_EQ(reader.count(), 1);
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"pool.json", "pool.npy"}));
}

TEST_F(PoolTest, CreatesAPrivateFolder) {
  if (!test::ModesKept(root_)) GTEST_SKIP() << root_ << "'s file system keeps no permission bits";
  const std::string dir = root_ + "/a/b/pool";
  WritePool(dir, 2, 2, 1);
  struct stat st {};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((dir + "/pool.npy").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u) << "pool.npy readable by others";
}

TEST_F(PoolTest, RefusesMissingFiles) {
  ExpectIoError([&] { PoolReader r(root_ + "/nope"); }, root_ + "/nope");
  const std::string dir = root_ + "/pool";
  WritePool(dir, 2, 2, 1);
  fs::remove(dir + "/pool.npy");
  ExpectIoError([&] { PoolReader r(dir); }, dir + "/pool.npy");
  fs::remove(dir + "/pool.json");
  ExpectIoError([&] { PoolReader r(dir); }, dir + "/pool.json");
}

TEST_F(PoolTest, RefusesTruncatedData) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 4, 4, 3);
  fs::resize_file(dir + "/pool.npy", fs::file_size(dir + "/pool.npy") - 5);
  ExpectIoError([&] { PoolReader r(dir); }, dir + "/pool.npy");
  ExpectIoError([&] { PoolReader r(dir); }, "truncated");
}

TEST_F(PoolTest, RefusesWrongCountInJson) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 4, 4, 3);
  nlohmann::json j = PoolReader(dir).index();
  j["candidates"].erase(j["candidates"].begin());
  std::ofstream(dir + "/pool.json") << j.dump();
  ExpectIoError([&] { PoolReader r(dir); }, dir + "/pool.json");
  ExpectIoError([&] { PoolReader r(dir); }, "holds 3 candidates");
}

TEST_F(PoolTest, RefusesIncompleteOrInvalidJson) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 4, 4, 1);
  nlohmann::json j = PoolReader(dir).index();
  j["complete"] = false;
  std::ofstream(dir + "/pool.json") << j.dump();
  ExpectIoError([&] { PoolReader r(dir); }, "incomplete");
  std::ofstream(dir + "/pool.json") << "{not json";
  ExpectIoError([&] { PoolReader r(dir); }, dir + "/pool.json");
  j["complete"] = true;
  j["size"] = {4, 5};
  std::ofstream(dir + "/pool.json") << j.dump();
  ExpectIoError([&] { PoolReader r(dir); }, "4x4");
}

TEST_F(PoolTest, RefusesWrongDtypeOrShape) {
  const std::string dir = root_ + "/pool";
  WritePool(dir, 4, 4, 1);
  // A float32 (4,4) .npy in place of the frames.
  Array2D a;
  a.rows = 4;
  a.cols = 4;
  a.data.assign(16, 1.0f);
  WriteNpy(dir + "/pool.npy", a);
  ExpectIoError([&] { PoolReader r(dir); }, dir + "/pool.npy");
  ExpectIoError([&] { PoolReader r(dir); }, "dtype");
  std::ofstream(dir + "/pool.npy") << "not an npy file at all";
  ExpectIoError([&] { PoolReader r(dir); }, "magic");
}

TEST_F(PoolTest, MisuseIsRefused) {
  const std::string dir = root_ + "/pool";
  PoolWriter writer(dir, 4, 4, Meta());
  EXPECT_THROW(writer.Append(Frame(4, 4, 0).data(), nlohmann::json::array()),
               std::invalid_argument);
  writer.Close();
  EXPECT_THROW(writer.Close(), std::logic_error);
  EXPECT_THROW(writer.Append(Frame(4, 4, 0).data(), {{"psnr", 1.0}}), std::logic_error);
  // A file where the folder should be.
  std::ofstream(root_ + "/file") << "x";
  ExpectIoError([&] { PoolWriter w(root_ + "/file", 4, 4, Meta()); }, root_ + "/file");
}

TEST_F(PoolTest, WriteErrorNamesTheFile) {
  // A file size limit stands in for a full disk: the write fails with EFBIG instead of ENOSPC.
  const std::string dir = root_ + "/pool";
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  {
    PoolWriter writer(dir, 32, 32, Meta());
    writer.Append(Frame(32, 32, 0).data(), {{"iteration", 1}});
    struct rlimit small = old;
    small.rlim_cur = 4000;  // header + one frame (3072) fit, a second frame does not
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    ExpectIoError(
        [&] {
          writer.Append(Frame(32, 32, 1).data(), {{"iteration", 2}});
        },
        dir + "/pool.npy");
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    EXPECT_EQ(writer.count(), 1);
    // The failed frame is dropped; the writer goes on once space is back.
    writer.Append(Frame(32, 32, 2).data(), {{"iteration", 3}});
    writer.Close();
  }
  std::signal(SIGXFSZ, old_handler);
  PoolReader reader(dir);
  ASSERT_EQ(reader.count(), 2);
  EXPECT_EQ(reader.Read(1), Frame(32, 32, 2));
  EXPECT_EQ(reader.index()["candidates"][1]["iteration"], 3);
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"pool.json", "pool.npy"}));
}

TEST_F(PoolTest, NumpyReadsThePool) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with numpy not available: numpy.load check skipped";
  }
  const std::string dir = root_ + "/pool";
  const int64_t h = 6, w = 5;
  WritePool(dir, h, w, 3);
  const std::string script =
      "import numpy as np, sys\n"
      "p = np.load(sys.argv[1])\n"
      "assert p.dtype == np.uint8, p.dtype\n"
      "assert p.shape == (3, 6, 5, 3), p.shape\n"
      "assert p.flags['C_CONTIGUOUS']\n"
      "k = np.arange(6 * 5 * 3)\n"
      "for i in range(3):\n"
      "    want = ((k * 7 + i * 31) % 256).astype(np.uint8).reshape(6, 5, 3)\n"
      "    assert (p[i] == want).all(), i\n";
  std::ofstream(root_ + "/check.py") << script;
  const std::string cmd = "/usr/bin/python3 " + root_ + "/check.py " + dir + "/pool.npy";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace dippas
