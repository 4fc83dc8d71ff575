// CUDA warpAffine: one thread per output pixel, grid (x tiles, y tiles, crops). A block inverts its
// crop's matrix once (double, as align.cpp) into shared memory; each pixel then follows WarpRow in
// align.cpp operation for operation.
#include "vision/align_cuda.h"

#include "common/cuda_util.h"

namespace facesight {
namespace {

using namespace cuda_detail;

constexpr int kBlockX = 32, kBlockY = 8;

struct KernelArgs {
  WarpParams p;
  const ImageU8* frames;
  const WarpCrop* crops;
  int64_t crop_count;
  float* out;
};

struct CropState {  // per block, in shared memory
  const uint8_t* data;
  int64_t row_stride;
  int32_t width, height, channels;
  int32_t x0, y0;  // the readable window: [x0, width) × [y0, height), the frame cut to the crop's clip
  double inv[6];
};

__global__ void __launch_bounds__(kBlockX* kBlockY) WarpKernel(const KernelArgs a) {
  __shared__ CropState s;
  const int64_t W = a.p.out_width, H = a.p.out_height;
  const int64_t x = static_cast<int64_t>(blockIdx.x) * kBlockX + threadIdx.x;
  const int64_t y = static_cast<int64_t>(blockIdx.y) * kBlockY + threadIdx.y;
  for (int64_t n = blockIdx.z; n < a.crop_count; n += gridDim.z) {
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) {
      const WarpCrop crop = a.crops[n];
      const ImageU8 f = a.frames[crop.frame];
      s.data = f.data, s.row_stride = f.row_stride, s.channels = f.channels;
      s.x0 = max(0, crop.clip_x0), s.y0 = max(0, crop.clip_y0);
      s.width = min(f.width, crop.clip_x1), s.height = min(f.height, crop.clip_y1);
      // align.cpp's InvertToDouble; NaN when singular, and a NaN position reads only the border.
      const double ma = crop.matrix.m[0], mb = crop.matrix.m[1], mc = crop.matrix.m[2];
      const double md = crop.matrix.m[3], me = crop.matrix.m[4], mf = crop.matrix.m[5];
      const double det = SubD(MulD(ma, me), MulD(mb, md));
      const double k = det != 0 ? 1.0 / det : nan("");
      s.inv[0] = MulD(me, k), s.inv[1] = MulD(-mb, k), s.inv[2] = MulD(SubD(MulD(mb, mf), MulD(me, mc)), k);
      s.inv[3] = MulD(-md, k), s.inv[4] = MulD(ma, k), s.inv[5] = MulD(SubD(MulD(md, mc), MulD(ma, mf)), k);
    }
    __syncthreads();
    if (x >= W || y >= H) continue;
    const PixelNormalization& norm = a.p.norm;
    const int C = s.channels;
    int src[3];
    float mean[3], inv_std[3], border[3], border_out[3];
    for (int c = 0; c < 3; ++c) {
      const int rgb = norm.order == ColorOrder::Rgb ? c : 2 - c;
      src[c] = C >= 3 ? rgb : 0;
      mean[c] = norm.mean[c];
      inv_std[c] = 1.f / norm.std[c];
      border[c] = a.p.border_rgb[rgb];
      border_out[c] = Normalize(a.p.border_rgb[rgb], mean[c], inv_std[c]);
    }
    const double* inv = s.inv;
    const double row_x = AddD(MulD(inv[1], static_cast<double>(y)), inv[2]);
    const double row_y = AddD(MulD(inv[4], static_cast<double>(y)), inv[5]);
    const double sx = AddD(row_x, MulD(inv[0], static_cast<double>(x)));
    const double sy = AddD(row_y, MulD(inv[3], static_cast<double>(x)));
    const int64_t SW = s.width, SH = s.height, X0 = s.x0, Y0 = s.y0;
    float v[3];
    if (!(sx >= X0 - 1 && sx < SW && sy >= Y0 - 1 && sy < SH)) {  // no neighbour inside (also catches NaN)
      v[0] = border_out[0], v[1] = border_out[1], v[2] = border_out[2];
    } else {
      const int64_t x0 = static_cast<int64_t>(sx + 1) - 1, y0 = static_cast<int64_t>(sy + 1) - 1;
      const float wx = static_cast<float>(sx - x0), wy = static_cast<float>(sy - y0);
      const bool in_x0 = x0 >= X0, in_x1 = x0 + 1 < SW && x0 + 1 >= X0, in_y0 = y0 >= Y0, in_y1 = y0 + 1 < SH && y0 + 1 >= Y0;
      const uint8_t* r0 = s.data + y0 * s.row_stride + x0 * C;
      const uint8_t* r1 = r0 + s.row_stride;
      for (int k = 0; k < 3; ++k) {
        const int ch = src[k];
        const float pa = in_y0 && in_x0 ? r0[ch] : border[k];
        const float pb = in_y0 && in_x1 ? r0[C + ch] : border[k];
        const float pc = in_y1 && in_x0 ? r1[ch] : border[k];
        const float pd = in_y1 && in_x1 ? r1[C + ch] : border[k];
        v[k] = Normalize(Lerp(Lerp(pa, pb, wx), Lerp(pc, pd, wx), wy), mean[k], inv_std[k]);
      }
    }
    const int64_t image = 3 * H * W;
    if (norm.layout == TensorLayout::Nhwc) {
      float* q = a.out + n * image + (y * W + x) * 3;
      q[0] = v[0], q[1] = v[1], q[2] = v[2];
    } else {
      float* q = a.out + n * image + y * W + x;
      q[0] = v[0], q[H * W] = v[1], q[2 * H * W] = v[2];
    }
  }
}

}  // namespace

size_t WarpAffineBatchCudaWorkspaceSize(const WarpParams&, int64_t) { return 0; }

CudaStatus WarpAffineBatchCuda(const WarpParams& params, const ImageU8* frames, const WarpCrop* crops,
                               int64_t crop_count, float* out, void* workspace, size_t workspace_bytes,
                               cudaStream_t stream) {
  (void)workspace, (void)workspace_bytes;
  if (crop_count <= 0) return CudaStatus::Ok();
  if (params.out_width <= 0 || params.out_height <= 0) return CudaStatus::Invalid("WarpAffineBatchCuda: empty output size");
  const dim3 block(kBlockX, kBlockY);
  const dim3 grid(GridFor(params.out_width, kBlockX), GridFor(params.out_height, kBlockY),
                  static_cast<unsigned>(crop_count < 65535 ? crop_count : 65535));
  WarpKernel<<<grid, block, 0, stream>>>(KernelArgs{params, frames, crops, crop_count, out});
  return LastLaunchStatus();
}

}  // namespace facesight
