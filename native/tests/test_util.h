// A tiny test harness for the core's C++ tests (no framework: GPU machines build these alone).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace facesight_test {

inline int& Failures() { static int n = 0; return n; }
inline int& Checks() { static int n = 0; return n; }

#define CHECK(cond, ...)                                                          \
  do {                                                                            \
    ++facesight_test::Checks();                                                   \
    if (!(cond)) {                                                                \
      ++facesight_test::Failures();                                               \
      std::fprintf(stderr, "FAIL %s:%d: %s ", __FILE__, __LINE__, #cond);         \
      std::fprintf(stderr, __VA_ARGS__);                                          \
      std::fprintf(stderr, "\n");                                                 \
    }                                                                             \
  } while (0)

inline std::vector<float> RandomVector(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Max of |a-b| / (atol + rtol·|b|): ≤ 1 means within tolerance.
inline double ToleranceRatio(const float* a, const float* b, size_t n, double rtol, double atol) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double err = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!std::isfinite(a[i])) return INFINITY;
    worst = std::max(worst, err / (atol + rtol * std::fabs(static_cast<double>(b[i]))));
  }
  return worst;
}

inline int Finish(const char* name) {
  std::printf("%s: %d checks, %d failed\n", name, Checks(), Failures());
  return Failures() ? 1 : 0;
}

}  // namespace facesight_test
