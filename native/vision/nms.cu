// Bitmask NMS in five launches:
//   keys    (score desc, index asc) keys for the candidates passing score_threshold, an atomic count;
//   sort    radix sort of the keys (cuda_util.cu): the visiting order, as on the CPU;
//   gather  the first M = min(passing, pre_top_k) boxes in that order, with their areas;
//   mask    block (r, c) of 64 × 64: bit j of mask[i][c] says candidate i suppresses c·64 + j (> i);
//   reduce  one block walks candidates in order, 64 at a time: a warp resolves a block of 64 against
//           its diagonal word, then all threads OR the kept rows into the `removed` words after it.
#include "vision/nms_cuda.h"

#include "common/cuda_util.h"

namespace facesight {
namespace {

using namespace cuda_detail;

constexpr int kThreads = 256;
constexpr int kReduceThreads = 256;
constexpr int64_t kMaxColumnBlocks = 6144;  // removed words in 48 KiB of shared memory

int64_t Considered(const NmsParams& p, int64_t capacity) {
  return p.pre_top_k > 0 && p.pre_top_k < capacity ? p.pre_top_k : capacity;
}

struct NmsScratch {
  uint64_t* keys;
  uint64_t* sorted;
  void* sort_temp;
  size_t sort_bytes;
  int32_t* passing;  // candidates passing score_threshold
  int32_t* order;    // [M] original index of the i-th visited candidate
  float4* box;       // [M] its box
  float* area;       // [M]
  uint64_t* mask;    // [M][column blocks]
  size_t total;
};

NmsScratch Carve(void* base, const NmsParams& p, int64_t capacity) {
  const int64_t m = Considered(p, capacity), blocks = (m + 63) / 64;
  WorkspaceCarver c(base);
  NmsScratch s;
  s.keys = c.Take<uint64_t>(capacity);
  s.sorted = c.Take<uint64_t>(capacity);
  s.sort_bytes = SortKeys64TempBytes(capacity, 32 + IndexBits(capacity));
  s.sort_temp = c.Take<char>(s.sort_bytes);
  s.passing = c.Take<int32_t>(1);
  s.order = c.Take<int32_t>(m);
  s.box = c.Take<float4>(m);
  s.area = c.Take<float>(m);
  s.mask = c.Take<uint64_t>(m * blocks);
  s.total = c.used();
  return s;
}

__global__ void KeyKernel(const float* scores, int64_t capacity, const int32_t* count, float threshold, int bits,
                          uint64_t* keys, int32_t* passing) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= capacity) return;
  const int64_t n = count ? *count : capacity;
  const float score = i < n ? scores[i] : 0.f;
  const bool pass = i < n && score > threshold;
  keys[i] = pass ? ScoreIndexKey(score, static_cast<uint32_t>(i), bits) : ~uint64_t{0};
  const unsigned ballot = __ballot_sync(__activemask(), pass);
  if (pass && (threadIdx.x & 31) == __ffs(ballot) - 1) atomicAdd(passing, __popc(ballot));
}

__device__ __forceinline__ int64_t Visited(const int32_t* passing, int64_t m_max) {
  const int64_t n = *passing;
  return n < m_max ? n : m_max;
}

__global__ void GatherKernel(const float* boxes, const uint64_t* sorted, int bits, const int32_t* passing, int64_t m_max,
                             float one, int32_t* order, float4* box, float* area) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= Visited(passing, m_max)) return;
  const uint32_t idx = KeyIndex(sorted[i], bits);
  const float* b = boxes + 4 * static_cast<int64_t>(idx);
  const float4 v = make_float4(b[0], b[1], b[2], b[3]);
  order[i] = static_cast<int32_t>(idx);
  box[i] = v;
  area[i] = Mul(Add(Sub(v.z, v.x), one), Add(Sub(v.w, v.y), one));  // (x2 − x1 + one) · (y2 − y1 + one)
}

// nms.cpp's IoU test, operation for operation (std::min/max semantics, unfused, true division).
__device__ __forceinline__ bool Suppresses(const float4& a, float aa, const float4& b, float ba, float one, float t) {
  const float w = StdMax(0.f, Add(Sub(StdMin(a.z, b.z), StdMax(a.x, b.x)), one));
  const float h = StdMax(0.f, Add(Sub(StdMin(a.w, b.w), StdMax(a.y, b.y)), one));
  const float inter = Mul(w, h);
  return __fdiv_rn(inter, Sub(Add(aa, ba), inter)) > t;
}

__global__ void __launch_bounds__(64) MaskKernel(const float4* box, const float* area, const int32_t* passing,
                                                 int64_t m_max, int64_t blocks, float one, float threshold,
                                                 uint64_t* mask) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (col_block < row_block) return;  // only words at or after a row's own block are ever read
  const int64_t m = Visited(passing, m_max);
  if (row_block * 64 >= m || col_block * 64 >= m) return;
  __shared__ float4 s_box[64];
  __shared__ float s_area[64];
  const int64_t j = col_block * 64 + threadIdx.x;
  if (j < m) s_box[threadIdx.x] = box[j], s_area[threadIdx.x] = area[j];
  __syncthreads();
  const int64_t i = row_block * 64 + threadIdx.x;
  if (i >= m) return;
  const float4 a = box[i];
  const float aa = area[i];
  const int cols = static_cast<int>(m - col_block * 64 < 64 ? m - col_block * 64 : 64);
  uint64_t bits = 0;
  for (int c = col_block == row_block ? threadIdx.x + 1 : 0; c < cols; ++c)
    if (Suppresses(a, aa, s_box[c], s_area[c], one, threshold)) bits |= uint64_t{1} << c;
  mask[i * blocks + col_block] = bits;
}

__global__ void __launch_bounds__(kReduceThreads) ReduceKernel(const uint64_t* mask, const int32_t* order,
                                                               const int32_t* passing, int64_t m_max, int64_t blocks,
                                                               int64_t max_out, int32_t* kept, int32_t* kept_count) {
  extern __shared__ uint64_t removed[];  // [blocks]
  __shared__ uint64_t s_keep;
  __shared__ int64_t s_kept;
  const int64_t m = Visited(passing, m_max);
  const int64_t used_blocks = (m + 63) / 64;
  for (int64_t c = threadIdx.x; c < used_blocks; c += blockDim.x) removed[c] = 0;
  if (threadIdx.x == 0) s_kept = 0;
  __syncthreads();
  for (int64_t b = 0; b < used_blocks; ++b) {
    if (threadIdx.x < 32) {
      // Warp 0: lane l holds the diagonal words of rows b·64 + l and b·64 + 32 + l; lane 0 walks the
      // 64 candidates in order, fetching each row's word from its holder by shuffle.
      const int lane = threadIdx.x;
      const int64_t r0 = b * 64 + lane, r1 = r0 + 32;
      const uint64_t d0 = r0 < m ? mask[r0 * blocks + b] : 0, d1 = r1 < m ? mask[r1 * blocks + b] : 0;
      uint64_t rem = removed[b], keep = 0;
      int64_t n = s_kept;
      const int rows = static_cast<int>(m - b * 64 < 64 ? m - b * 64 : 64);
      for (int r = 0; r < rows && n < max_out; ++r) {
        const uint64_t word = __shfl_sync(0xffffffffu, r < 32 ? d0 : d1, r & 31);
        if (!((rem >> r) & 1)) {
          keep |= uint64_t{1} << r;
          rem |= word;
          if (lane == 0) kept[n] = order[b * 64 + r];
          ++n;
        }
      }
      if (lane == 0) s_keep = keep, s_kept = n;
    }
    __syncthreads();
    const uint64_t keep = s_keep;
    if (s_kept >= max_out) break;  // uniform: every thread reads the same value after the barrier
    // Rows kept in block b suppress in the blocks after it.
    for (int64_t c = b + 1 + threadIdx.x; c < used_blocks; c += blockDim.x) {
      uint64_t acc = removed[c];
      for (uint64_t k = keep; k; k &= k - 1) acc |= mask[(b * 64 + __ffsll(static_cast<long long>(k)) - 1) * blocks + c];
      removed[c] = acc;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *kept_count = static_cast<int32_t>(s_kept);
}

}  // namespace

size_t NmsCudaWorkspaceSize(const NmsParams& params, int64_t capacity) {
  return capacity > 0 ? Carve(nullptr, params, capacity).total : 0;
}

CudaStatus NmsCuda(const NmsParams& p, const float* boxes, const float* scores, int64_t capacity, const int32_t* count,
                   int32_t* kept, int32_t* kept_count, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (capacity <= 0) return FromCuda(cudaMemsetAsync(kept_count, 0, sizeof(int32_t), stream));
  if (capacity > INT32_MAX) return CudaStatus::Invalid("NmsCuda: more than 2^31 candidates");
  const NmsScratch s = Carve(workspace, p, capacity);
  if (workspace_bytes < s.total) return CudaStatus::Workspace();
  const int64_t m_max = Considered(p, capacity), blocks = (m_max + 63) / 64;
  if (blocks > kMaxColumnBlocks) return CudaStatus::Invalid("NmsCuda: more than 393,216 candidates; set pre_top_k");
  const int bits = IndexBits(capacity);
  const float one = p.plus_one ? 1.f : 0.f;
  const int64_t max_out = p.max_output > 0 ? p.max_output : m_max;

  CudaStatus st = FromCuda(cudaMemsetAsync(s.passing, 0, sizeof(int32_t), stream));
  if (!st.ok()) return st;
  KeyKernel<<<GridFor(capacity, kThreads), kThreads, 0, stream>>>(scores, capacity, count, p.score_threshold, bits,
                                                                  s.keys, s.passing);
  if (!(st = LastLaunchStatus()).ok()) return st;
  if (!(st = SortKeys64(s.keys, s.sorted, capacity, 32 + bits, s.sort_temp, s.sort_bytes, stream)).ok()) return st;
  GatherKernel<<<GridFor(m_max, kThreads), kThreads, 0, stream>>>(boxes, s.sorted, bits, s.passing, m_max, one,
                                                                  s.order, s.box, s.area);
  if (!(st = LastLaunchStatus()).ok()) return st;
  MaskKernel<<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(blocks)), 64, 0, stream>>>(
      s.box, s.area, s.passing, m_max, blocks, one, p.iou_threshold, s.mask);
  if (!(st = LastLaunchStatus()).ok()) return st;
  ReduceKernel<<<1, kReduceThreads, blocks * sizeof(uint64_t), stream>>>(s.mask, s.order, s.passing, m_max, blocks,
                                                                          max_out, kept, kept_count);
  return LastLaunchStatus();
}

}  // namespace facesight
