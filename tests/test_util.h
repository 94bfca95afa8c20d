// Helpers shared by the tests: where the reference data is, and array
// comparison by error relative to the reference's largest magnitude.
#pragma once

#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "dippas/io/npy.h"

namespace dippas::test {

// ../shared beside the clone (or $DIPPAS_SHARED); empty when absent.
inline std::string SharedDir() {
  const char* env = std::getenv("DIPPAS_SHARED");
  std::string dir = env ? env : DIPPAS_SHARED_DIR;
  return std::filesystem::is_directory(dir + "/reference") ? dir : "";
}

inline std::string ReferenceDir() { return SharedDir() + "/reference/prnu-python"; }

#define DIPPAS_REQUIRE_SHARED()                                                                    \
  do {                                                                                             \
    if (::dippas::test::SharedDir().empty())                                                       \
      GTEST_SKIP() << "reference data not found (../shared beside the clone, or $DIPPAS_SHARED):" \
                      " skipping the comparison with prnu-python";                                 \
  } while (0)

inline torch::Tensor ToTensor(const Array2D& a) {
  return torch::from_blob(const_cast<float*>(a.data.data()), {a.rows, a.cols}, torch::kFloat32).clone();
}

inline torch::Tensor LoadNpy(const std::string& path) { return ToTensor(ReadNpy(path)); }

// max |actual − ref| / max |ref|
inline double RelMaxError(const torch::Tensor& actual, const torch::Tensor& ref) {
  auto a = actual.to(torch::kFloat64).cpu(), r = ref.to(torch::kFloat64).cpu();
  EXPECT_EQ(a.sizes(), r.sizes());
  if (a.sizes() != r.sizes()) return INFINITY;
  return (a - r).abs().max().item<double>() / r.abs().max().item<double>();
}

// Streams like any EXPECT_*: the failure prints max|error|/max|ref|.
#define EXPECT_REL_CLOSE(actual, ref, tol) EXPECT_LE(::dippas::test::RelMaxError((actual), (ref)), (tol))

}  // namespace dippas::test
