// CUDA letterbox: one thread per output pixel, grid (x tiles, y tiles, frames). Each block reads its
// frame's descriptor and geometry once into shared memory; the per-pixel sample positions are the
// CPU's (letterbox.cpp) computed in double with explicitly rounded operations, so outputs match.
#include "vision/letterbox_cuda.h"

#include "common/cuda_util.h"

namespace facesight {
namespace {

using namespace cuda_detail;

constexpr int kBlockX = 32, kBlockY = 8;

// ComputeLetterboxGeometry, written again for the device (same integer and double arithmetic).
__device__ LetterboxGeometry DeviceGeometry(int32_t out_w, int32_t out_h, ResizeMode mode, int32_t src_w, int32_t src_h) {
  LetterboxGeometry g;
  if (mode == ResizeMode::PadSquare) {
    const double side = src_w > src_h ? src_w : src_h;
    g.x = g.y = 0;
    g.width = out_w, g.height = out_h;
    g.scale_x = static_cast<float>(round(src_w * out_w / side) / src_w);
    g.scale_y = static_cast<float>(round(src_h * out_h / side) / src_h);
    return g;
  }
  if (mode == ResizeMode::Stretch) {
    g.width = out_w, g.height = out_h;
  } else if (static_cast<int64_t>(out_w) * src_h <= static_cast<int64_t>(out_h) * src_w) {
    g.width = out_w;
    const int64_t h = static_cast<int64_t>(src_h) * out_w / src_w;
    g.height = static_cast<int32_t>(h > 1 ? h : 1);
  } else {
    g.height = out_h;
    const int64_t w = static_cast<int64_t>(src_w) * out_h / src_h;
    g.width = static_cast<int32_t>(w > 1 ? w : 1);
  }
  g.x = (out_w - g.width) / 2;
  g.y = (out_h - g.height) / 2;
  g.scale_x = static_cast<float>(static_cast<double>(g.width) / src_w);
  g.scale_y = static_cast<float>(static_cast<double>(g.height) / src_h);
  return g;
}

struct Tap {
  int32_t i0, i1;
  float w;
};

// letterbox.cpp's SourceTap: half-pixel mapping, clamped to the edges.
__device__ __forceinline__ Tap SourceTap(int64_t o, double src_per_out, int32_t size) {
  double s = SubD(MulD(static_cast<double>(o) + 0.5, src_per_out), 0.5);
  s = fmin(fmax(s, 0.0), static_cast<double>(size - 1));
  const int32_t i0 = static_cast<int32_t>(s);
  return {i0, i0 + 1 < size - 1 ? i0 + 1 : size - 1, static_cast<float>(s - i0)};
}

// letterbox.cpp's LegacySourceTap (TensorFlow's legacy bilinear: source = output · scale).
__device__ __forceinline__ Tap LegacySourceTap(int64_t o, double scale, int32_t size) {
  const double s = MulD(static_cast<double>(o), scale);
  const int32_t i0 = static_cast<int32_t>(s);
  const int32_t i1 = static_cast<int32_t>(ceil(s));
  return {i0 < size - 1 ? i0 : size - 1, i1 < size - 1 ? i1 : size - 1, static_cast<float>(s - i0)};
}

struct KernelArgs {
  LetterboxParams p;
  const ImageU8* frames;
  int64_t frame_count;
  float* out;
  LetterboxGeometry* geometry;
};

__device__ __forceinline__ void Put(float* out, const PixelNormalization& norm, int64_t n, int64_t y, int64_t x,
                                    int64_t H, int64_t W, const float v[3]) {
  const int64_t image = 3 * H * W;
  if (norm.layout == TensorLayout::Nhwc) {
    float* q = out + n * image + (y * W + x) * 3;
    q[0] = v[0], q[1] = v[1], q[2] = v[2];
  } else {
    float* q = out + n * image + y * W + x;
    q[0] = v[0], q[H * W] = v[1], q[2 * H * W] = v[2];
  }
}

__global__ void __launch_bounds__(kBlockX* kBlockY) LetterboxKernel(const KernelArgs a) {
  // Raw storage: the structs' default member initialisers are not allowed on __shared__ variables.
  __shared__ __align__(16) unsigned char s_raw[sizeof(ImageU8) + sizeof(LetterboxGeometry)];
  ImageU8& s_frame = *reinterpret_cast<ImageU8*>(s_raw);
  LetterboxGeometry& s_geom = *reinterpret_cast<LetterboxGeometry*>(s_raw + sizeof(ImageU8));
  const int32_t W = a.p.out_width, H = a.p.out_height;
  const int64_t x = static_cast<int64_t>(blockIdx.x) * kBlockX + threadIdx.x;
  const int64_t y = static_cast<int64_t>(blockIdx.y) * kBlockY + threadIdx.y;
  for (int64_t n = blockIdx.z; n < a.frame_count; n += gridDim.z) {
    __syncthreads();  // the previous frame's readers are done with the shared descriptor
    if (threadIdx.x == 0 && threadIdx.y == 0) {
      s_frame = a.frames[n];
      s_geom = DeviceGeometry(W, H, a.p.mode, s_frame.width, s_frame.height);
      if (a.geometry && blockIdx.x == 0 && blockIdx.y == 0) a.geometry[n] = s_geom;
    }
    __syncthreads();
    if (x >= W || y >= H) continue;
    const ImageU8 f = s_frame;
    const LetterboxGeometry g = s_geom;
    const PixelNormalization& norm = a.p.norm;
    int src[3];
    float mean[3], inv_std[3];
    for (int c = 0; c < 3; ++c) {  // vision_detail::MakeChannelMap
      const int rgb = norm.order == ColorOrder::Rgb ? c : 2 - c;
      src[c] = f.channels >= 3 ? rgb : 0;
      mean[c] = norm.mean[c];
      inv_std[c] = 1.f / norm.std[c];
    }
    float v[3];
    if (a.p.mode == ResizeMode::PadSquare) {
      // Sample the virtual square: the image at its top-left, pad_rgb elsewhere.
      const int32_t side = f.width > f.height ? f.width : f.height;
      const Tap tx = LegacySourceTap(x, static_cast<double>(side) / W, side);
      const Tap ty = LegacySourceTap(y, static_cast<double>(side) / H, side);
      for (int k = 0; k < 3; ++k) {
        const float pad = f.channels == 1 ? a.p.pad_rgb[0] : a.p.pad_rgb[src[k]];
        auto pixel = [&](int32_t px, int32_t py) -> float {
          if (px >= f.width || py >= f.height) return pad;
          return f.data[py * f.row_stride + static_cast<int64_t>(px) * f.channels + src[k]];
        };
        const float top = Lerp(pixel(tx.i0, ty.i0), pixel(tx.i1, ty.i0), tx.w);
        const float bottom = Lerp(pixel(tx.i0, ty.i1), pixel(tx.i1, ty.i1), tx.w);
        v[k] = Normalize(Lerp(top, bottom, ty.w), mean[k], inv_std[k]);
      }
    } else if (x < g.x || x >= g.x + g.width || y < g.y || y >= g.y + g.height) {
      for (int k = 0; k < 3; ++k) {  // vision_detail::NormalizeColor
        const int rgb = norm.order == ColorOrder::Rgb ? k : 2 - k;
        v[k] = Normalize(a.p.pad_rgb[rgb], mean[k], inv_std[k]);
      }
    } else {
      // Bilinear, half-pixel centres. An identity scale gives weight 0 and the exact source value,
      // which is what the CPU's straight-conversion path writes.
      const Tap tx = SourceTap(x - g.x, static_cast<double>(f.width) / g.width, f.width);
      const Tap ty = SourceTap(y - g.y, static_cast<double>(f.height) / g.height, f.height);
      const uint8_t* r0 = f.data + ty.i0 * f.row_stride;
      const uint8_t* r1 = f.data + ty.i1 * f.row_stride;
      const int64_t c0 = static_cast<int64_t>(tx.i0) * f.channels, c1 = static_cast<int64_t>(tx.i1) * f.channels;
      for (int k = 0; k < 3; ++k) {
        const int ch = src[k];
        const float top = Lerp(r0[c0 + ch], r0[c1 + ch], tx.w);
        const float bottom = Lerp(r1[c0 + ch], r1[c1 + ch], tx.w);
        v[k] = Normalize(Lerp(top, bottom, ty.w), mean[k], inv_std[k]);
      }
    }
    Put(a.out, norm, n, y, x, H, W, v);
  }
}

}  // namespace

size_t LetterboxCudaWorkspaceSize(const LetterboxParams&, int64_t) { return 0; }

CudaStatus LetterboxCuda(const LetterboxParams& params, const ImageU8* frames, int64_t frame_count, float* out,
                         LetterboxGeometry* geometry, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  (void)workspace, (void)workspace_bytes;
  if (frame_count <= 0) return CudaStatus::Ok();
  if (params.out_width <= 0 || params.out_height <= 0) return CudaStatus::Invalid("LetterboxCuda: empty output size");
  const dim3 block(kBlockX, kBlockY);
  const dim3 grid(GridFor(params.out_width, kBlockX), GridFor(params.out_height, kBlockY),
                  static_cast<unsigned>(frame_count < 65535 ? frame_count : 65535));
  LetterboxKernel<<<grid, block, 0, stream>>>(KernelArgs{params, frames, frame_count, out, geometry});
  return LastLaunchStatus();
}

}  // namespace facesight
