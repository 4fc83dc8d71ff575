#include "ops/gemm.h"

#include <algorithm>
#include <cstring>

namespace facesight {

int64_t PackedGemmASize(int64_t M, int64_t K) {
  const int64_t mr = Kernels().mr;
  return (M + mr - 1) / mr * mr * K;
}

void PackGemmAInto(const float* src, int64_t M, int64_t K, int64_t lda, bool trans_a, float* out) {
  const int64_t mr = Kernels().mr;
  for (int64_t m0 = 0; m0 < M; m0 += mr) {
    float* panel = out + m0 * K;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t r = 0; r < mr; ++r) {
        int64_t m = m0 + r;
        panel[k * mr + r] = m < M ? (trans_a ? src[k * lda + m] : src[m * lda + k]) : 0.f;
      }
  }
}

std::vector<float> PackGemmA(const float* src, int64_t M, int64_t K, int64_t lda, bool trans_a) {
  std::vector<float> out(PackedGemmASize(M, K));
  PackGemmAInto(src, M, K, lda, trans_a, out.data());
  return out;
}

std::vector<float> PadVector(const float* src, int64_t n, int64_t multiple) {
  std::vector<float> out((n + multiple - 1) / multiple * multiple + multiple, 0.f);
  if (src) std::copy(src, src + n, out.begin());
  return out;
}

namespace {

constexpr int64_t kKc = 256;         // K block (measured: 128 and 192 are no faster, even for taps)
constexpr int64_t kNcPacked = 384;   // columns per task when B is packed: kc × 384 floats stay in L2
constexpr int64_t kNcDirect = 768;   // columns per task when B is read in place
constexpr int64_t kMaxABlockFloats = 128 * 1024;  // a task's A block: 512 KiB, half of a core's L2
constexpr int64_t kPackMinPanels = 4;         // pack B when this many A panels reuse it (else read in place)

// Copies a short run of floats inline: fixed-size chunks compile to vector moves, where a memcpy
// call per panel row would cost more than the copy (packing makes tens of thousands of them).
inline void CopyShort(float* dst, const float* src, int64_t n) {
  for (; n >= 16; n -= 16, dst += 16, src += 16) std::memcpy(dst, src, 16 * sizeof(float));
  for (; n >= 4; n -= 4, dst += 4, src += 4) std::memcpy(dst, src, 4 * sizeof(float));
  for (; n > 0; --n) *dst++ = *src++;
}

// Calls fn(image, first column in that image, count, offset in the panel) for each run of
// [n0, n0 + cols) that lies in one image.
template <typename F>
inline void ForEachImageRun(const GemmBatch& batch, int64_t n0, int64_t cols, F fn) {
  if (batch.cols_per_image == 0) {
    fn(0, n0, cols, 0);
    return;
  }
  for (int64_t j = 0; j < cols;) {
    const int64_t image = (n0 + j) / batch.cols_per_image, i = (n0 + j) % batch.cols_per_image;
    const int64_t run = std::min(cols - j, batch.cols_per_image - i);
    fn(image, i, run, j);
    j += run;
  }
}

// Packs B rows [k0, k0+kc) and columns [n0, n0+cols) into a [kc][NR] panel (zero padded).
void PackBPanel(const GemmB& b, const GemmBatch& batch, int64_t k0, int64_t kc, int64_t n0, int64_t cols, int64_t nr,
                float* out) {
  for (int64_t k = 0; k < kc; ++k) {
    const int64_t kk = k0 + k;
    float* dst = out + k * nr;
    switch (b.kind) {
      case GemmB::Kind::RowMajor:
      case GemmB::Kind::Taps: {
        const float* row = b.kind == GemmB::Kind::RowMajor
                               ? b.data + kk * b.ld
                               : b.data + b.tap_offsets[kk / b.tap_rows] + (kk % b.tap_rows) * b.ld;
        ForEachImageRun(batch, n0, cols, [&](int64_t image, int64_t i, int64_t run, int64_t at) {
          CopyShort(dst + at, row + image * batch.b_image_stride + i, run);
        });
        break;
      }
      case GemmB::Kind::Transposed:
        for (int64_t j = 0; j < cols; ++j) dst[j] = b.data[(n0 + j) * b.ld + kk];
        break;
      case GemmB::Kind::Packed:
        std::memcpy(dst, b.data + ((n0 / nr) * b.ld + kk) * nr, sizeof(float) * nr);
        break;
    }
    std::fill(dst + cols, dst + nr, 0.f);
  }
}

}  // namespace

std::vector<float> PackGemmB(const float* src, int64_t K, int64_t N, int64_t ld, bool transposed) {
  const int64_t nr = Kernels().nr;
  const int64_t panels = (N + nr - 1) / nr;
  std::vector<float> out(panels * K * nr, 0.f);
  for (int64_t j = 0; j < panels; ++j)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < nr && j * nr + c < N; ++c) {
        const int64_t n = j * nr + c;
        out[(j * K + k) * nr + c] = transposed ? src[n * ld + k] : src[k * ld + n];
      }
  return out;
}

void Gemm(int64_t M, int64_t N, int64_t K, const float* a_packed, const GemmB& b, float* c, int64_t ldc,
          const GemmEpilogue& ep, ThreadPool* pool, const GemmBatch& batch_in) {
  // A single image is the unbatched case.
  const GemmBatch batch = batch_in.cols_per_image >= N ? GemmBatch{} : batch_in;
  const bool batched = batch.cols_per_image > 0;
  const int64_t cols_per_image = batched ? batch.cols_per_image : N;
  const int64_t images = batched ? N / cols_per_image : 1;
  const SimdKernels& kern = Kernels();
  const int64_t mr = kern.mr, nr = kern.nr;
  const int64_t m_panels = (M + mr - 1) / mr;
  const bool prepacked = b.kind == GemmB::Kind::Packed;
  const bool taps = b.kind == GemmB::Kind::Taps;
  const bool in_place_ok = b.kind == GemmB::Kind::RowMajor || taps;
  // Packing B costs one pass over it; for a row-major B it pays when several A panels reuse each
  // packed block (contiguous panels instead of kc rows scattered over memory and pages). Taps are
  // always read in place through a row table: packing them would copy the image K/C times over.
  const bool pack_b = !prepacked && (!in_place_ok || (!taps && m_panels >= kPackMinPanels));
  // Tasks: blocks of column panels × ranges of row panels. Enough of them (≥ 8 per thread where the
  // shape allows) that dynamic scheduling evens out the threads; blocks no wider than L2 allows.
  // B read in place needs blocks inside one image; packed B may span images (small images then
  // fill whole panels), with C tiles split at image boundaries.
  const bool per_image_blocks = batched && !pack_b && !prepacked;
  const int64_t block_span = per_image_blocks ? cols_per_image : N;   // columns a block lives in
  const int64_t spans = per_image_blocks ? images : 1;
  const int64_t threads = pool ? pool->threads() : 1;
  const int64_t want_tasks = threads > 1 ? 8 * threads : 1;
  // Rows first: a task's A block (its row panels × kc) must stay in L2 while it sweeps its columns,
  // or A (the weights) streams from memory once per column block.
  const int64_t max_split_panels = std::max<int64_t>(1, kMaxABlockFloats / (mr * kKc));
  int64_t m_split = (m_panels + max_split_panels - 1) / max_split_panels;
  // Then columns: enough blocks for the wanted task count, no wider than L2 allows for packed B.
  const int64_t panels_per_span = (block_span + nr - 1) / nr;
  const int64_t max_block_panels = (pack_b || prepacked ? kNcPacked : kNcDirect) / nr;
  const int64_t want_blocks = std::max<int64_t>(1, want_tasks / m_split);
  const int64_t block_panels =
      std::max<int64_t>(1, std::min(max_block_panels, panels_per_span * spans / want_blocks));
  const int64_t nc = block_panels * nr;
  const int64_t blocks_per_span = (block_span + nc - 1) / nc;
  const int64_t n_blocks = blocks_per_span * spans;
  // Split rows further when the columns alone give too few tasks (few pixels, many channels).
  while (n_blocks * m_split < want_tasks && m_split * 2 <= m_panels) m_split *= 2;
  const int64_t panels_per_split = (m_panels + m_split - 1) / m_split;

  ParallelFor(pool, n_blocks * m_split, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> bpack;           // packed B block or ragged edge panel
    thread_local std::vector<const float*> row_table;  // B row pointers (taps read in place)
    alignas(64) float tile[16 * 64];                 // one partial C tile (MR ≤ 16, NR ≤ 64)
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t nb = t / m_split, ms = t % m_split;
      const int64_t span = nb / blocks_per_span;
      const int64_t n0 = span * block_span + (nb % blocks_per_span) * nc;
      const int64_t n1 = std::min(span * block_span + block_span, n0 + nc);
      // In-place reads: this block's image (per_image_blocks guarantees there is one).
      const int64_t image = batched ? n0 / cols_per_image : 0;
      const float* b_image = b.data + (batched ? image * batch.b_image_stride : 0);
      auto c_at = [&](int64_t column) {  // C address of a global column, row 0
        return batched ? c + (column / cols_per_image) * batch.c_image_stride + column % cols_per_image : c + column;
      };
      const int64_t p0 = ms * panels_per_split, p1 = std::min(m_panels, p0 + panels_per_split);
      const int64_t n_panels = (n1 - n0 + nr - 1) / nr;
      for (int64_t k0 = 0, kc; k0 < K; k0 += kc) {
        kc = std::min(kKc, K - k0);
        const bool last_k = k0 + kc == K;
        if (pack_b) {
          bpack.resize(n_panels * kc * nr);
          for (int64_t j = 0; j < n_panels; ++j) {
            const int64_t c0 = n0 + j * nr;
            PackBPanel(b, batch, k0, kc, c0, std::min(nr, n1 - c0), nr, bpack.data() + j * kc * nr);
          }
        } else if (!prepacked) {
          if (taps) {
            row_table.resize(kc);
            for (int64_t k = 0; k < kc; ++k)
              row_table[k] = b_image + b.tap_offsets[(k0 + k) / b.tap_rows] + ((k0 + k) % b.tap_rows) * b.ld;
          }
          if ((n1 - n0) % nr) {  // only the ragged last panel is copied
            bpack.resize(kc * nr);
            const int64_t c0 = n0 + (n_panels - 1) * nr;
            PackBPanel(b, batch, k0, kc, c0, n1 - c0, nr, bpack.data());
          }
        }
        // B micro-panel outer (it stays in L1), A micro-panels inner (streamed from L2).
        for (int64_t j = 0; j < n_panels; ++j) {
          const int64_t c0 = n0 + j * nr;                      // global column
          const int64_t i = batched ? c0 % cols_per_image : c0;  // column within its image
          const int64_t cols = std::min(nr, n1 - c0);
          const bool one_image = !batched || i + cols <= cols_per_image;
          // Where this panel's B rows are: packed here, prepacked, or in place.
          const float* bp = nullptr;
          int64_t ldb = nr;
          bool by_rows = false;
          if (pack_b) bp = bpack.data() + j * kc * nr;
          else if (prepacked) bp = b.data + ((c0 / nr) * K + k0) * nr;
          else if (cols < nr) bp = bpack.data();
          else if (taps) by_rows = true;
          else { bp = b_image + k0 * b.ld + i; ldb = b.ld; }
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t m0 = p * mr;
            const int64_t rows = std::min(mr, M - m0);
            const float* a = a_packed + m0 * K + k0 * mr;
            TileEpilogue tep;
            if (last_k) {
              tep.row_bias = ep.row_bias ? ep.row_bias + m0 : nullptr;
              tep.col_bias = ep.col_bias ? ep.col_bias + c0 : nullptr;
              tep.row_slope = ep.row_slope ? ep.row_slope + m0 : nullptr;
              tep.act = ep.act;
            }
            const TileEpilogue* epp = last_k ? &tep : nullptr;
            const bool full = rows == mr && cols == nr && one_image;
            float* cout = full ? c_at(c0) + m0 * ldc : tile;
            const int64_t ldo = full ? ldc : nr;
            // Partial tiles go through `tile`, copied in and out in runs that stay inside one image.
            auto copy_tile = [&](bool to_tile) {
              ForEachImageRun(batch, c0, cols, [&](int64_t, int64_t, int64_t run, int64_t at) {
                float* base = c_at(c0 + at) + m0 * ldc;
                for (int64_t r = 0; r < rows; ++r) {
                  if (to_tile) CopyShort(tile + r * nr + at, base + r * ldc, run);
                  else CopyShort(base + r * ldc, tile + r * nr + at, run);
                }
              });
            };
            if (!full && k0 > 0) copy_tile(true);
            if (by_rows) kern.gemm_micro_rows(kc, a, row_table.data(), i, cout, ldo, k0 > 0, epp);
            else kern.gemm_micro(kc, a, bp, ldb, cout, ldo, k0 > 0, epp);
            if (!full) copy_tile(false);
          }
        }
      }
    }
  });
}

}  // namespace facesight
