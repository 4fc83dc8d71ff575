#include "ops/layout.h"

#include <algorithm>

namespace facesight {

bool CanBlock(const Shape& shape) {
  return shape.size() == 4 && shape[1] > 0 && shape[1] % kChannelBlock == 0 && shape[2] * shape[3] > 1;
}

namespace {

// One (image, channel block) pair per work item, walked in runs of 16 pixels so both sides stay in a
// few cache lines. to_blocked: y[p][j] = x[j][p]; otherwise x[j][p] = y[p][j] with the roles swapped.
template <bool ToBlocked>
void Reorder(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, ThreadPool* pool) {
  constexpr int64_t B = kChannelBlock;
  const int64_t blocks = N * (C / B);
  ParallelFor(pool, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* s = src + b * B * HW;
      float* d = dst + b * B * HW;
      for (int64_t p0 = 0; p0 < HW; p0 += B) {
        const int64_t p1 = std::min(HW, p0 + B);
        for (int64_t j = 0; j < B; ++j)
          for (int64_t p = p0; p < p1; ++p) {
            if (ToBlocked) d[p * B + j] = s[j * HW + p];
            else d[j * HW + p] = s[p * B + j];
          }
      }
    }
  });
}

}  // namespace

void ReorderToBlocked(const float* x, float* y, int64_t N, int64_t C, int64_t HW, ThreadPool* pool) {
  Reorder<true>(x, y, N, C, HW, pool);
}

void ReorderFromBlocked(const float* x, float* y, int64_t N, int64_t C, int64_t HW, ThreadPool* pool) {
  Reorder<false>(x, y, N, C, HW, pool);
}

std::vector<float> PackBlockedConvWeights(const float* w, int64_t M, int64_t C, int64_t KH, int64_t KW) {
  constexpr int64_t B = kChannelBlock;
  std::vector<float> packed(M * C * KH * KW);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw)
          packed[((((m / B) * KH + kh) * KW + kw) * C + c) * B + m % B] = w[((m * C + c) * KH + kh) * KW + kw];
  return packed;
}

std::vector<float> PackBlockedDepthwiseWeights(const float* w, int64_t C, int64_t KH, int64_t KW) {
  constexpr int64_t B = kChannelBlock;
  std::vector<float> packed(C * KH * KW);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < KH * KW; ++t) packed[((c / B) * KH * KW + t) * B + c % B] = w[c * KH * KW + t];
  return packed;
}

}  // namespace facesight
