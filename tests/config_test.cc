// Config files for DipOptions: the shipped configs, the type checks and the
// messages a user sees (each must name the file and the key).
#include "dippas/dip/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "dippas/dip/settings_hash.h"

namespace dippas {
namespace {

const std::string kConfigs = std::string(DIPPAS_SOURCE_DIR) + "/configs/";

// DipOptions has no operator==; compare field by field so a failure names the field.
void ExpectSame(const DipOptions& a, const DipOptions& b) {
  EXPECT_EQ(a.sigma, b.sigma);
  EXPECT_EQ(a.input_depth, b.input_depth);
  EXPECT_EQ(a.filters, b.filters);
  EXPECT_EQ(a.skips, b.skips);
  EXPECT_EQ(a.alpha, b.alpha);
  EXPECT_EQ(a.lr, b.lr);
  EXPECT_EQ(a.input_noise_std, b.input_noise_std);
  EXPECT_EQ(a.reg_noise_std, b.reg_noise_std);
  EXPECT_EQ(a.philox_noise, b.philox_noise);
  EXPECT_EQ(a.fused_input, b.fused_input);
  EXPECT_EQ(a.fused_norm, b.fused_norm);
  EXPECT_EQ(a.fused_decoder, b.fused_decoder);
  EXPECT_EQ(a.fused_upsample, b.fused_upsample);
  EXPECT_EQ(a.direct_conv, b.direct_conv);
  EXPECT_EQ(a.psnr_stop, b.psnr_stop);
  EXPECT_EQ(a.psnr_min, b.psnr_min);
  EXPECT_EQ(a.max_iterations, b.max_iterations);
  EXPECT_EQ(a.block_size, b.block_size);
  EXPECT_EQ(a.top, b.top);
  EXPECT_EQ(a.order_by_abs, b.order_by_abs);
  EXPECT_EQ(a.select_residual, b.select_residual);
  EXPECT_EQ(a.sigmoid_floor, b.sigmoid_floor);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.plateau_window, b.plateau_window);
  EXPECT_EQ(a.pool_max, b.pool_max);
  EXPECT_EQ(a.restarts, b.restarts);
  EXPECT_EQ(a.prnu_weight, b.prnu_weight);
  EXPECT_EQ(a.prnu_block, b.prnu_block);
  EXPECT_EQ(a.gamma_lr, b.gamma_lr);
  EXPECT_EQ(a.tile_size, b.tile_size);
  EXPECT_EQ(a.tile_margin, b.tile_margin);
  EXPECT_EQ(a.warm_start, b.warm_start);
  EXPECT_EQ(a.checkpoint_every, b.checkpoint_every);
  EXPECT_EQ(a.checkpoint_seconds, b.checkpoint_seconds);
}

// The message of the ConfigError `f` throws ("" and a test failure if none).
std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError thrown";
  return "";
}

std::string ParseError(const std::string& text) {
  return ErrorOf([&] { ParseDipConfig(text, "cfg.yaml"); });
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

TEST(DipConfig, DefaultYamlIsExactlyTheDefaults) {
  // Start from a base that differs everywhere, so every key must be in the file.
  DipOptions base;
  base.sigma = 1;
  base.input_depth = 1;
  base.filters = {1, 1};
  base.skips = {1};
  base.alpha = 1;
  base.lr = 0.5;
  base.input_noise_std = 0.5;
  base.reg_noise_std = 0.5;
  base.psnr_stop = 50;
  base.psnr_min = 49;
  base.max_iterations = 1;
  base.block_size = 1;
  base.top = 1;
  base.seed = 1;
  base.warm_start = 1;
  base.plateau_window = 1;
  base.pool_max = 1;
  base.restarts = 2;
  base.prnu_weight = 1;
  base.prnu_block = 8;
  base.gamma_lr = 0.5;
  base.order_by_abs = 1;
  base.select_residual = 1;
  base.sigmoid_floor = 0.1;
  base.tile_size = 64;
  base.tile_margin = 8;
  base.concurrent_tiles = 2;
  base.checkpoint_every = 7;
  base.checkpoint_seconds = 7;
  ExpectSame(LoadDipConfig(kConfigs + "default.yaml", base), DipOptions{});
}

// The user's config holds the method's settings: the CPU implementation switches are left out
// of it (they stay keys a config or --set may give, to reproduce older bits).
TEST(DipConfig, DefaultYamlKeepsImplementationSwitchesOut) {
  std::ifstream in(kConfigs + "default.yaml");
  std::string line;
  for (const std::string key : {"philox_noise", "fused_input", "fused_norm", "fused_decoder",
                                "fused_upsample", "direct_conv"}) {
    in.clear();
    in.seekg(0);
    while (std::getline(in, line)) {
      EXPECT_FALSE(StartsWith(line, key + ":")) << "default.yaml sets " << key;
    }
    EXPECT_NO_THROW(ParseDipConfig(key + ": 0\n", "cfg.yaml")) << key;
  }
}

TEST(DipConfig, SmokeYamlParsesAndPassesCheck) {
  const DipOptions o = LoadDipConfig(kConfigs + "smoke.yaml");
  EXPECT_NO_THROW(o.Check());
  EXPECT_EQ(o.input_depth, 32);
  EXPECT_EQ(o.filters, (std::vector<int64_t>{8, 16, 32, 64, 128}));
  EXPECT_EQ(o.skips, (std::vector<int64_t>{8, 16, 32, 64}));
  EXPECT_EQ(o.lr, 0.01);
  EXPECT_EQ(o.psnr_min, 30);
  EXPECT_EQ(o.psnr_stop, 33);
  EXPECT_EQ(o.max_iterations, 300);
  EXPECT_EQ(o.block_size, 32);
  EXPECT_EQ(o.top, 5);
  EXPECT_EQ(o.seed, 0);
  EXPECT_EQ(o.sigma, DipOptions{}.sigma);  // not in the file: default
}

TEST(DipConfig, FastYamlIsThePaperWithTwiceTheLearningRateAndASmallerPool) {
  DipOptions expected;
  expected.lr = 0.002;
  expected.pool_max = 250;
  ExpectSame(LoadDipConfig(kConfigs + "fast.yaml"), expected);
}

TEST(DipConfig, RobustYamlIsThePaperRankedByTheResidualTooWithTheSigmoidFloor) {
  DipOptions expected;
  expected.select_residual = 1;
  expected.sigmoid_floor = 0.05;
  ExpectSame(LoadDipConfig(kConfigs + "robust.yaml"), expected);
}

TEST(DipConfig, JsonTextWorks) {
  const DipOptions o = ParseDipConfig(
      "{\n\t\"lr\": 0.02,\n\t\"top\": 3,\n\t\"filters\": [4, 8, 16],\n\t\"skips\": [4, 8]\n}",
      "cfg.json");
  EXPECT_EQ(o.lr, 0.02);
  EXPECT_EQ(o.top, 3);
  EXPECT_EQ(o.filters, (std::vector<int64_t>{4, 8, 16}));
  EXPECT_EQ(o.skips, (std::vector<int64_t>{4, 8}));
}

TEST(DipConfig, ContentNotExtensionPicksTheFormat) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / ("dippas_config_test_" + std::to_string(getpid()) + ".yaml")).string();
  std::ofstream(path) << "{\"seed\": 7}";
  EXPECT_EQ(LoadDipConfig(path).seed, 7);
  std::filesystem::remove(path);
}

TEST(DipConfig, AbsentKeysKeepTheBase) {
  DipOptions base;
  base.seed = 42;
  base.lr = 0.005;
  base.filters = {8, 8, 8};
  base.skips = {8, 8};
  const DipOptions o = ParseDipConfig("top: 4\n", "cfg.yaml", base);
  EXPECT_EQ(o.top, 4);
  base.top = 4;
  ExpectSame(o, base);
}

TEST(DipConfig, EmptyOrCommentOnlyIsNoKeys) {
  DipOptions base;
  base.seed = 3;
  ExpectSame(ParseDipConfig("", "cfg.yaml", base), base);
  ExpectSame(ParseDipConfig("# nothing here\n", "cfg.yaml", base), base);
}

TEST(DipConfig, UnknownKeyNamesKeyAndFile) {
  const std::string msg = ParseError("lr: 0.01\nfoo: 1\n");
  EXPECT_TRUE(StartsWith(msg, "cfg.yaml: unknown key 'foo'")) << msg;
  EXPECT_NE(msg.find("known keys: sigma, input_depth"), std::string::npos) << msg;
}

TEST(DipConfig, SyntaxErrorNamesFileAndLine) {
  const std::string msg = ParseError("lr: 0.01\nfilters: [16, 32\ntop: 3\n");
  EXPECT_TRUE(StartsWith(msg, "cfg.yaml: syntax error at line ")) << msg;
  EXPECT_NE(msg.find("column"), std::string::npos) << msg;
}

TEST(DipConfig, TopLevelMustBeAMapping) {
  EXPECT_TRUE(StartsWith(ParseError("- 1\n- 2\n"), "cfg.yaml: expected a mapping"));
  EXPECT_TRUE(StartsWith(ParseError("42\n"), "cfg.yaml: expected a mapping"));
}

TEST(DipConfig, DuplicateAndMultiDocumentRejected) {
  EXPECT_TRUE(StartsWith(ParseError("lr: 0.01\nlr: 0.02\n"), "cfg.yaml: key 'lr' appears twice"));
  EXPECT_TRUE(StartsWith(ParseError("lr: 0.01\n---\ntop: 2\n"), "cfg.yaml: holds 2"));
}

TEST(DipConfig, WrongTypesNameTheKey) {
  struct Case {
    const char* text;
    const char* prefix;
  };
  const Case cases[] = {
      {"lr: fast\n", "cfg.yaml: key 'lr': expected a number"},
      {"lr: \"0.01\"\n", "cfg.yaml: key 'lr': expected a number"},  // quoted = string
      {"{\"lr\": \"0.01\"}", "cfg.yaml: key 'lr': expected a number"},
      {"lr:\n", "cfg.yaml: key 'lr': expected a number"},
      {"lr: [0.01]\n", "cfg.yaml: key 'lr': expected a number"},
      {"max_iterations: 1.5\n", "cfg.yaml: key 'max_iterations': expected an integer"},
      {"max_iterations: 1e3\n", "cfg.yaml: key 'max_iterations': expected an integer"},
      {"seed: 99999999999999999999\n", "cfg.yaml: key 'seed': expected an integer"},
      {"top: true\n", "cfg.yaml: key 'top': expected an integer"},
      {"sigma: true\n", "cfg.yaml: key 'sigma': expected a number"},
      {"filters: [16, -1]\n", "cfg.yaml: key 'filters': expected a list of positive integers"},
      {"filters: [16, 1.5]\n", "cfg.yaml: key 'filters': expected a list of positive integers"},
      {"filters: 16\n", "cfg.yaml: key 'filters': expected a list of positive integers"},
      {"skips: [a, b]\n", "cfg.yaml: key 'skips': expected a list of positive integers"},
  };
  for (const auto& c : cases) {
    const std::string msg = ParseError(c.text);
    EXPECT_TRUE(StartsWith(msg, c.prefix)) << c.text << " -> " << msg;
  }
}

TEST(DipConfig, TypeErrorShowsTheOffendingValueAndLine) {
  const std::string msg = ParseError("lr: 0.01\nfilters: [16, -1]\n");
  EXPECT_NE(msg.find("got '-1' at line 2"), std::string::npos) << msg;
}

TEST(DipConfig, AcceptedNumberSpellings) {
  const DipOptions o = ParseDipConfig("lr: 1e-3\nsigma: +2\nalpha: .5\ntop: +7\n", "cfg.yaml");
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.sigma, 2.0);
  EXPECT_EQ(o.alpha, 0.5);
  EXPECT_EQ(o.top, 7);
}

TEST(DipConfig, OutOfRangeFailsCheckNamingTheKey) {
  EXPECT_TRUE(StartsWith(ParseError("psnr_min: 40\npsnr_stop: 39\n"), "cfg.yaml: psnr_min"));
  EXPECT_TRUE(StartsWith(ParseError("block_size: 0\n"), "cfg.yaml: block_size"));
  EXPECT_TRUE(StartsWith(ParseError("top: 0\n"), "cfg.yaml: top"));
  EXPECT_TRUE(StartsWith(ParseError("order_by_abs: 2\n"), "cfg.yaml: order_by_abs"));
  EXPECT_TRUE(StartsWith(ParseError("philox_noise: 2\n"), "cfg.yaml: philox_noise"));
  EXPECT_TRUE(StartsWith(ParseError("fused_input: -1\n"), "cfg.yaml: fused_input"));
  EXPECT_TRUE(StartsWith(ParseError("fused_norm: 2\n"), "cfg.yaml: fused_norm"));
  EXPECT_TRUE(StartsWith(ParseError("fused_decoder: 3\n"), "cfg.yaml: fused_decoder"));
  EXPECT_TRUE(StartsWith(ParseError("fused_upsample: 2\n"), "cfg.yaml: fused_upsample"));
  EXPECT_TRUE(StartsWith(ParseError("direct_conv: 2\n"), "cfg.yaml: direct_conv"));
  EXPECT_TRUE(StartsWith(ParseError("filters: [8, 16]\n"), "cfg.yaml: skips"));
}

TEST(DipConfig, MissingFileNamesThePath) {
  const std::string path = kConfigs + "no_such_config.yaml";
  EXPECT_EQ(ErrorOf([&] { LoadDipConfig(path); }), path + ": no such file");
  const std::string msg = ErrorOf([&] { LoadDipConfig(kConfigs); });
  EXPECT_TRUE(StartsWith(msg, kConfigs + ": no such file")) << msg;
}

TEST(DipConfig, FileErrorsStartWithThePath) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / ("dippas_config_test_bad_" + std::to_string(getpid()) + ".yaml")).string();
  std::ofstream(path) << "seed: 1\nbogus: 2\n";
  const std::string msg = ErrorOf([&] { LoadDipConfig(path); });
  EXPECT_TRUE(StartsWith(msg, path + ": unknown key 'bogus'")) << msg;
  std::filesystem::remove(path);
}

TEST(DipConfig, JsonHasExactlyTheKeysAndRoundTrips) {
  DipOptions o = LoadDipConfig(kConfigs + "smoke.yaml");
  o.sigma = 2.75;
  o.lr = 0.1 + 0.2;  // not exactly representable in short decimal: tests full precision
  const nlohmann::json j = DipOptionsToJson(o);
  ASSERT_EQ(j.size(), DipOptionKeys().size());
  for (const auto& key : DipOptionKeys()) EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j["filters"].is_array());
  EXPECT_TRUE(j["skips"].is_array());
  EXPECT_TRUE(j["top"].is_number_integer());
  ExpectSame(ParseDipConfig(j.dump(), "roundtrip.json"), o);
  ExpectSame(ParseDipConfig(DipOptionsToJson(DipOptions{}).dump(2), "d.json"), DipOptions{});
}

TEST(DipConfig, SetDipOptionSetsOneKey) {
  DipOptions o;
  SetDipOption(o, "lr", "0.02");
  SetDipOption(o, "max_iterations", "500");
  SetDipOption(o, "filters", "8,16, 32");
  SetDipOption(o, "skips", "[8,16]");
  SetDipOption(o, "order_by_abs", "1");
  EXPECT_EQ(o.order_by_abs, 1);
  EXPECT_EQ(o.lr, 0.02);
  EXPECT_EQ(o.max_iterations, 500);
  EXPECT_EQ(o.filters, (std::vector<int64_t>{8, 16, 32}));
  EXPECT_EQ(o.skips, (std::vector<int64_t>{8, 16}));
  EXPECT_NO_THROW(o.Check());
}

TEST(DipConfig, SetDipOptionRejectsBadValues) {
  DipOptions o;
  auto set = [&](const char* key, const char* value) {
    return ErrorOf([&] { SetDipOption(o, key, value); });
  };
  EXPECT_TRUE(StartsWith(set("lr", "fast"), "--lr: expected a number"));
  EXPECT_TRUE(StartsWith(set("top", "1.5"), "--top: expected an integer"));
  EXPECT_TRUE(StartsWith(set("top", "true"), "--top: expected an integer"));
  EXPECT_TRUE(StartsWith(set("top", ""), "--top: expected an integer"));
  EXPECT_TRUE(StartsWith(set("filters", "16,-1"), "--filters: expected a list of positive"));
  EXPECT_TRUE(StartsWith(set("filters", "16,,32"), "--filters: expected a list of positive"));
  EXPECT_TRUE(StartsWith(set("skips", ""), "--skips: expected a list of positive"));
  EXPECT_TRUE(StartsWith(set("foo", "1"), "--foo: unknown key"));
  ExpectSame(o, DipOptions{});  // a rejected value leaves the options unchanged
}

// Adding a key to DipOptions must not change the hash of a run made before it existed (batch
// would redo every finished item, checkpoints would restart): at its neutral value it stays out.
TEST(SettingsHash, KeysAddedLaterLeaveEarlierHashesAlone) {
  ResultSettings s;
  s.method = "dip";
  s.mode = "blind";
  s.crop = 64;
  s.dip.max_iterations = 1;
  s.dip.restarts = 0;
  // What `dippas anonymize --blind --crop 64 --set max_iterations=1 --set restarts=0` wrote into
  // its metrics at 673f7e6, before sigmoid_floor and select_residual existed.
  EXPECT_EQ(SettingsHash(s), "fnv1a64:c2abbee007bfdb53");
  const auto config = nlohmann::json::parse(ResultSettingsJson(s))["config"];
  EXPECT_TRUE(config.contains("lr"));
  EXPECT_FALSE(config.contains("sigmoid_floor"));
  EXPECT_FALSE(config.contains("select_residual"));
  // Away from it, they count.
  ResultSettings floor = s, select = s;
  floor.dip.sigmoid_floor = 0.05;
  select.dip.select_residual = 1;
  EXPECT_NE(SettingsHash(floor), SettingsHash(s));
  EXPECT_NE(SettingsHash(select), SettingsHash(s));
  EXPECT_NE(SettingsHash(select), SettingsHash(floor));
}

}  // namespace
}  // namespace dippas
