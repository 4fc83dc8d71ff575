// Plain reference implementations the optimised kernels are checked against.
#pragma once
#include <cstdint>
#include <vector>

namespace facesight_test {

// y[n][m][oh][ow] for NCHW input, weights [M][C/group][KH][KW].
inline std::vector<float> ReferenceConv(const std::vector<float>& x, int64_t N, int64_t C, int64_t H, int64_t W,
                                        const std::vector<float>& w, int64_t M, int64_t KH, int64_t KW,
                                        const std::vector<float>* bias, int64_t group, int64_t stride, int64_t pad_t,
                                        int64_t pad_l, int64_t pad_b, int64_t pad_r, int64_t dil, int64_t* OH_out, int64_t* OW_out) {
  const int64_t OH = (H + pad_t + pad_b - ((KH - 1) * dil + 1)) / stride + 1;
  const int64_t OW = (W + pad_l + pad_r - ((KW - 1) * dil + 1)) / stride + 1;
  *OH_out = OH;
  *OW_out = OW;
  const int64_t cin_g = C / group, cout_g = M / group;
  std::vector<float> y(N * M * OH * OW);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t g = m / cout_g;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = bias ? (*bias)[m] : 0.0;
          for (int64_t c = 0; c < cin_g; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * stride - pad_t + kh * dil, iw = ow * stride - pad_l + kw * dil;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += static_cast<double>(x[((n * C + g * cin_g + c) * H + ih) * W + iw]) *
                       w[((m * cin_g + c) * KH + kh) * KW + kw];
              }
          y[((n * M + m) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
    }
  return y;
}

// C[M×N] = A[M×K] · B[K×N], all row-major.
inline std::vector<float> ReferenceMatMul(const std::vector<float>& a, const std::vector<float>& b, int64_t M, int64_t N, int64_t K) {
  std::vector<float> c(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(a[i * K + k]) * b[k * N + j];
      c[i * N + j] = static_cast<float>(acc);
    }
  return c;
}

}  // namespace facesight_test
