// NCHW16c ("blocked") layout: a 4-D value [N, C, H, W] with C % 16 == 0 stored as [N][C/16][H][W][16].
// The engine keeps chains of convolutions, elementwise ops, concats and resizes in it, so convolutions
// vectorise over 16 channels of one pixel with no packing; these conversions run where a blocked value
// meets an op that reads NCHW (reshapes, heads with few channels, graph outputs).
#pragma once
#include <cstdint>
#include <vector>

#include "common/tensor.h"
#include "common/thread_pool.h"
#include "ops/kernels.h"

namespace facesight {

// Whether a shape can be held blocked: 4-D, channels a multiple of the block, more than one pixel
// (a 1×1 map is the same memory in both layouts).
bool CanBlock(const Shape& shape);

// Where plane nc (= n·C + c) of a [N, C, H, W] value starts, in either layout; its pixels are then
// PixelStride(blocked) floats apart. For ops whose NCHW16c path is the NCHW loop with other strides.
inline int64_t PlaneStart(int64_t nc, int64_t C, int64_t HW, bool blocked) {
  if (!blocked) return nc * HW;
  const int64_t n = nc / C, c = nc % C;
  return (n * C + c / kChannelBlock * kChannelBlock) * HW + c % kChannelBlock;
}
inline int64_t PixelStride(bool blocked) { return blocked ? kChannelBlock : 1; }

// x NCHW → y NCHW16c, and back; HW = H·W.
void ReorderToBlocked(const float* x, float* y, int64_t N, int64_t C, int64_t HW, ThreadPool* pool);
void ReorderFromBlocked(const float* x, float* y, int64_t N, int64_t C, int64_t HW, ThreadPool* pool);

// Conv weights [M][C][KH][KW] → [M/16][KH][KW][C][16] (BlockedConvArgs::w).
std::vector<float> PackBlockedConvWeights(const float* w, int64_t M, int64_t C, int64_t KH, int64_t KW);
// Depthwise weights [C][1][KH][KW] → [C/16][KH][KW][16] (BlockedDepthwiseArgs::w).
std::vector<float> PackBlockedDepthwiseWeights(const float* w, int64_t C, int64_t KH, int64_t KW);

}  // namespace facesight
