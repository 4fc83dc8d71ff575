// The blocked GEMM (every B source, ragged tiles, epilogues, threads) against a naive product.
// ctest runs this once per SIMD variant (FACESIGHT_ISA), so each instruction set is checked here.
#include <algorithm>

#include "common/cpu_features.h"
#include "ops/gemm.h"
#include "reference.h"
#include "test_util.h"

using namespace facesight;
using namespace facesight_test;

int main() {
  std::printf("SIMD variant: %s\n", Kernels().isa);
  ThreadPool pool(2);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {8, 48, 16}, {16, 100, 9}, {17, 33, 300},
                               {64, 1600, 64}, {128, 25, 1024}, {5, 769, 513}, {1, 128, 1024}};
  uint32_t seed = 1;
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    auto a = RandomVector(M * K, seed++), b = RandomVector(K * N, seed++), bias = RandomVector(M, seed++);
    auto ref = ReferenceMatMul(a, b, M, N, K);
    auto packed = PackGemmA(a.data(), M, K, K, false);
    const double tol_scale = std::sqrt(static_cast<double>(K));  // fp32 rounding grows ~ sqrt(K)
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      // Row-major B read in place.
      std::vector<float> c(M * N, -7.f);
      GemmB rb; rb.kind = GemmB::Kind::RowMajor; rb.data = b.data(); rb.ld = N;
      Gemm(M, N, K, packed.data(), rb, c.data(), N, GemmEpilogue{}, p);
      double r = ToleranceRatio(c.data(), ref.data(), c.size(), 1e-5 * tol_scale, 1e-5 * tol_scale);
      CHECK(r <= 1, "row-major M=%lld N=%lld K=%lld ratio %g", (long long)M, (long long)N, (long long)K, r);
      // Transposed B (a Linear layer's weight [N, K]).
      std::vector<float> bt(K * N);
      for (int64_t k = 0; k < K; ++k) for (int64_t j = 0; j < N; ++j) bt[j * K + k] = b[k * N + j];
      std::vector<float> c2(M * N, -7.f);
      GemmB tb; tb.kind = GemmB::Kind::Transposed; tb.data = bt.data(); tb.ld = K;
      Gemm(M, N, K, packed.data(), tb, c2.data(), N, GemmEpilogue{}, p);
      r = ToleranceRatio(c2.data(), ref.data(), c2.size(), 1e-5 * tol_scale, 1e-5 * tol_scale);
      CHECK(r <= 1, "transposed M=%lld N=%lld K=%lld ratio %g", (long long)M, (long long)N, (long long)K, r);
      // Prepacked B (constant weights).
      auto bp = PackGemmB(b.data(), K, N, N, false);
      std::vector<float> c4(M * N, -7.f);
      GemmB pb; pb.kind = GemmB::Kind::Packed; pb.data = bp.data(); pb.ld = K;
      Gemm(M, N, K, packed.data(), pb, c4.data(), N, GemmEpilogue{}, p);
      r = ToleranceRatio(c4.data(), ref.data(), c4.size(), 1e-5 * tol_scale, 1e-5 * tol_scale);
      CHECK(r <= 1, "prepacked M=%lld N=%lld K=%lld ratio %g", (long long)M, (long long)N, (long long)K, r);
      // Epilogue: row bias + LeakyReLU, and a transposed-A pack.
      auto packed_t = [&] {
        std::vector<float> at(K * M);
        for (int64_t i = 0; i < M; ++i) for (int64_t k = 0; k < K; ++k) at[k * M + i] = a[i * K + k];
        return PackGemmA(at.data(), M, K, M, true);
      }();
      auto padded_bias = PadVector(bias.data(), M, Kernels().mr);
      GemmEpilogue ep;
      ep.row_bias = padded_bias.data();
      ep.act.kind = ActKind::Leaky;
      ep.act.alpha = 0.1f;
      std::vector<float> c3(M * N);
      Gemm(M, N, K, packed_t.data(), rb, c3.data(), N, ep, p);
      std::vector<float> ref3 = ref;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          float v = ref[i * N + j] + bias[i];
          ref3[i * N + j] = v >= 0 ? v : 0.1f * v;
        }
      r = ToleranceRatio(c3.data(), ref3.data(), c3.size(), 1e-5 * tol_scale, 1e-5 * tol_scale);
      CHECK(r <= 1, "epilogue M=%lld N=%lld K=%lld ratio %g", (long long)M, (long long)N, (long long)K, r);
    }
  }
  return Finish("test_gemm");
}
