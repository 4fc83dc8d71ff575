// CUDA variant of nms.h: the same greedy NMS (IoU > threshold suppresses, plus_one, score_threshold,
// pre_top_k, max_output; visiting order score desc then index asc), as bitmask NMS — sort, one IoU
// bit per (candidate, later candidate) pair in blocks of 64, then one block walks the bits greedily.
// Kept indices equal the CPU's exactly (the IoU is computed with the CPU's operations, unfused).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "vision/nms.h"

namespace facesight {

// Scratch for `capacity` candidates. Dominated by the bitmask, M² / 8 bytes for M = capacity, or
// pre_top_k when that is smaller (35 MB for 16,800 candidates, 3.2 MB for 5,000): set pre_top_k for
// large inputs, as Pytorch_Retinaface does (5,000).
size_t NmsCudaWorkspaceSize(const NmsParams& params, int64_t capacity);

// Device pointers throughout. boxes [capacity][4], scores [capacity]; count: the number of valid
// candidates as an int32 on the device (decode's output), or null for all `capacity`. Writes the kept
// indices to kept (capacity: max_output when set, else capacity) by descending score, and their number
// to *kept_count (an int32 on the device).
CudaStatus NmsCuda(const NmsParams& params, const float* boxes, const float* scores, int64_t capacity,
                   const int32_t* count, int32_t* kept, int32_t* kept_count, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream);

}  // namespace facesight
