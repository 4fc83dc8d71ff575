// CUDA priors and decoders. Decoding is three steps, each one launch (the sort a few):
//   1. keys: every anchor gets a 64-bit key, (score desc, anchor asc) for those passing the
//      threshold and all ones for the rest; an atomic counts the passing ones;
//   2. radix sort of the keys (cuda_util.cu), which puts the passing anchors first, in final order;
//   3. decode: candidate i < count decodes anchor key[i] (so exp runs only for candidates).
// Arithmetic mirrors priors.cpp operation by operation (unfused, exp through double), so values equal
// the CPU's in all but rare last-bit cases.
#include "vision/priors_cuda.h"

#include "common/cuda_util.h"

namespace facesight {
namespace {

using namespace cuda_detail;

constexpr int kThreads = 256;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct PriorLayout {
  int32_t num_levels;
  int64_t begin[kMaxPriorLevels + 1];  // first prior of each level
  int32_t cols[kMaxPriorLevels];
};

__global__ void PriorKernel(const PriorParams p, const PriorLayout layout, float* priors) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= layout.begin[layout.num_levels]) return;
  int l = 0;
  while (i >= layout.begin[l + 1]) ++l;
  const PriorLevel& level = p.levels[l];
  const int64_t local = i - layout.begin[l];
  const int64_t cell = local / level.num_sizes;
  const int s = static_cast<int>(local % level.num_sizes);
  const int64_t row = cell / layout.cols[l], col = cell % layout.cols[l];
  const double W = p.image_width, H = p.image_height;
  double v[4] = {MulD(static_cast<double>(col) + 0.5, level.step) / W, MulD(static_cast<double>(row) + 0.5, level.step) / H,
                 level.min_sizes[s] / W, level.min_sizes[s] / H};
  float* out = priors + 4 * i;
  for (int k = 0; k < 4; ++k) {
    const float f = static_cast<float>(v[k]);
    out[k] = p.clip ? StdMin(StdMax(f, 0.f), 1.f) : f;
  }
}

// Step 1, shared by both decoders: score → key, passing count.
struct KeySource {
  const float* scores;
  int64_t stride, index;  // score of anchor a: scores[a · stride + index]
  bool sigmoid;
  float threshold;
};

__device__ __forceinline__ float AnchorScore(const KeySource& s, int64_t a) {
  float score = s.scores[a * s.stride + s.index];
  if (s.sigmoid) score = 1.f / Add(1.f, ExpF(-score));
  return score;
}

__global__ void KeyKernel(const KeySource s, int64_t anchors, int index_bits, uint64_t* keys, int32_t* count) {
  const int64_t a = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (a >= anchors) return;
  const float score = AnchorScore(s, a);
  const bool pass = score > s.threshold;
  keys[a] = pass ? ScoreIndexKey(score, static_cast<uint32_t>(a), index_bits) : ~uint64_t{0};
  // One atomic per warp.
  const unsigned ballot = __ballot_sync(__activemask(), pass);
  if (pass && (threadIdx.x & 31) == __ffs(ballot) - 1) atomicAdd(count, __popc(ballot));
}

__global__ void RetinaDecodeKernel(const RetinaDecodeParams p, const float* priors, const float* loc, const float* conf,
                                   const float* landms, const Candidates out, const int32_t* count,
                                   const uint64_t* sorted, int index_bits) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= *count) return;
  const int64_t a = KeyIndex(sorted[n], index_bits);
  const float W = static_cast<float>(p.image_width), H = static_cast<float>(p.image_height);
  const float v0 = p.variance_center, v1 = p.variance_size;
  const float* pr = priors + 4 * a;
  const float* d = loc + 4 * a;
  const float cx = Add(pr[0], Mul(Mul(d[0], v0), pr[2])), cy = Add(pr[1], Mul(Mul(d[1], v0), pr[3]));
  const float w = Mul(pr[2], ExpF(Mul(d[2], v1))), h = Mul(pr[3], ExpF(Mul(d[3], v1)));
  const float x1 = Sub(cx, w / 2), y1 = Sub(cy, h / 2);
  float* box = out.boxes + 4 * n;
  box[0] = Mul(x1, W), box[1] = Mul(y1, H), box[2] = Mul(Add(x1, w), W), box[3] = Mul(Add(y1, h), H);
  out.scores[n] = conf[2 * a + 1];
  if (out.landmarks) {
    const float* m = landms + 10 * a;
    float* lm = out.landmarks + 10 * n;
    for (int k = 0; k < 5; ++k) {
      lm[2 * k] = Mul(Add(pr[0], Mul(Mul(m[2 * k], v0), pr[2])), W);
      lm[2 * k + 1] = Mul(Add(pr[1], Mul(Mul(m[2 * k + 1], v0), pr[3])), H);
    }
  }
  if (out.anchor) out.anchor[n] = static_cast<int32_t>(a);
}

__global__ void SsdDecodeKernel(const SsdDecodeParams p, const KeySource s, const float* anchors, const float* deltas,
                                const Candidates out, const int32_t* count, const uint64_t* sorted, int index_bits) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= *count) return;
  const int64_t a = KeyIndex(sorted[n], index_bits);
  const float W = static_cast<float>(p.image_width), H = static_cast<float>(p.image_height);
  const int ix = p.yx_order ? 1 : 0, iy = 1 - ix;
  auto clip = [&](float v) { return p.clip ? StdMin(StdMax(v, 0.f), 1.f) : v; };
  const float* an = anchors + 4 * a;
  const float* d = deltas + 4 * a;
  const float cx = Add(an[0], Mul(d[ix] / p.scale_x, an[2])), cy = Add(an[1], Mul(d[iy] / p.scale_y, an[3]));
  const float w = Mul(an[2], ExpF(d[2 + ix] / p.scale_w)), h = Mul(an[3], ExpF(d[2 + iy] / p.scale_h));
  float* box = out.boxes + 4 * n;
  box[0] = Mul(clip(Sub(cx, w / 2)), W), box[1] = Mul(clip(Sub(cy, h / 2)), H);
  box[2] = Mul(clip(Add(cx, w / 2)), W), box[3] = Mul(clip(Add(cy, h / 2)), H);
  out.scores[n] = AnchorScore(s, a);
  if (out.anchor) out.anchor[n] = static_cast<int32_t>(a);
}

struct DecodeScratch {
  uint64_t* keys;
  uint64_t* sorted;
  void* sort_temp;
  size_t sort_bytes;
  size_t total;
};

DecodeScratch CarveDecode(void* base, int64_t anchors) {
  WorkspaceCarver carver(base);
  DecodeScratch s;
  s.keys = carver.Take<uint64_t>(anchors);
  s.sorted = carver.Take<uint64_t>(anchors);
  s.sort_bytes = SortKeys64TempBytes(anchors, 32 + IndexBits(anchors));
  s.sort_temp = carver.Take<char>(s.sort_bytes);
  s.total = carver.used();
  return s;
}

// Steps 1 and 2; the caller launches step 3.
CudaStatus KeysAndSort(const KeySource& source, int64_t anchors, int32_t* count, const DecodeScratch& s,
                       cudaStream_t stream) {
  const int bits = IndexBits(anchors);
  CudaStatus st = FromCuda(cudaMemsetAsync(count, 0, sizeof(int32_t), stream));
  if (!st.ok()) return st;
  KeyKernel<<<GridFor(anchors, kThreads), kThreads, 0, stream>>>(source, anchors, bits, s.keys, count);
  if (!(st = LastLaunchStatus()).ok()) return st;
  return SortKeys64(s.keys, s.sorted, anchors, 32 + bits, s.sort_temp, s.sort_bytes, stream);
}

}  // namespace

CudaStatus GeneratePriorsCuda(const PriorParams& p, float* priors, cudaStream_t stream) {
  if (p.num_levels < 0 || p.num_levels > kMaxPriorLevels) return CudaStatus::Invalid("GeneratePriorsCuda: num_levels");
  PriorLayout layout{};
  layout.num_levels = p.num_levels;
  for (int l = 0; l < p.num_levels; ++l) {
    const int64_t rows = CeilDiv(p.image_height, p.levels[l].step), cols = CeilDiv(p.image_width, p.levels[l].step);
    layout.cols[l] = static_cast<int32_t>(cols);
    layout.begin[l + 1] = layout.begin[l] + rows * cols * p.levels[l].num_sizes;
  }
  const int64_t n = layout.begin[p.num_levels];
  if (n == 0) return CudaStatus::Ok();
  PriorKernel<<<GridFor(n, kThreads), kThreads, 0, stream>>>(p, layout, priors);
  return LastLaunchStatus();
}

size_t DecodeCudaWorkspaceSize(int64_t anchors) { return CarveDecode(nullptr, anchors).total; }

CudaStatus DecodeRetinaFaceCuda(const RetinaDecodeParams& p, const float* priors, int64_t anchors, const float* loc,
                                const float* conf, const float* landms, const Candidates& out, int32_t* count,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (anchors <= 0) return FromCuda(cudaMemsetAsync(count, 0, sizeof(int32_t), stream));
  if (anchors > INT32_MAX) return CudaStatus::Invalid("DecodeRetinaFaceCuda: more than 2^31 anchors");
  const DecodeScratch s = CarveDecode(workspace, anchors);
  if (workspace_bytes < s.total) return CudaStatus::Workspace();
  CudaStatus st = KeysAndSort(KeySource{conf, 2, 1, false, p.score_threshold}, anchors, count, s, stream);
  if (!st.ok()) return st;
  RetinaDecodeKernel<<<GridFor(anchors, kThreads), kThreads, 0, stream>>>(p, priors, loc, conf, landms, out, count,
                                                                         s.sorted, IndexBits(anchors));
  return LastLaunchStatus();
}

CudaStatus DecodeSsdCuda(const SsdDecodeParams& p, const float* anchors, int64_t anchor_count, const float* deltas,
                         const float* scores, const Candidates& out, int32_t* count, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream) {
  if (anchor_count <= 0) return FromCuda(cudaMemsetAsync(count, 0, sizeof(int32_t), stream));
  if (anchor_count > INT32_MAX) return CudaStatus::Invalid("DecodeSsdCuda: more than 2^31 anchors");
  const DecodeScratch s = CarveDecode(workspace, anchor_count);
  if (workspace_bytes < s.total) return CudaStatus::Workspace();
  const KeySource source{scores, p.score_stride, p.score_index, p.score_sigmoid, p.score_threshold};
  CudaStatus st = KeysAndSort(source, anchor_count, count, s, stream);
  if (!st.ok()) return st;
  SsdDecodeKernel<<<GridFor(anchor_count, kThreads), kThreads, 0, stream>>>(p, source, anchors, deltas, out, count,
                                                                           s.sorted, IndexBits(anchor_count));
  return LastLaunchStatus();
}

}  // namespace facesight
