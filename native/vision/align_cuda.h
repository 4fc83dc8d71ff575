// CUDA variant of WarpAffineBatch (align.h): bilinear warpAffine with a constant border, many crops
// from many frames in one launch, results equal to the CPU kernel's (the same double-precision source
// positions, unfused float lerps). The similarity estimates (SimilarityTransform, EyeLineRotation)
// stay on the CPU: a few dozen flops per face.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "vision/align.h"

namespace facesight {

// Scratch: none (each block inverts its crop's matrix). Kept for the convention.
size_t WarpAffineBatchCudaWorkspaceSize(const WarpParams& params, int64_t crop_count);

// Device pointers throughout: frames, a device array of ImageU8 with device `data` (as LetterboxCuda);
// crops [crop_count] (frame index and source → crop matrix, as on the CPU); out: crop_count · 3 ·
// out_height · out_width floats, layout per params.norm.
CudaStatus WarpAffineBatchCuda(const WarpParams& params, const ImageU8* frames, const WarpCrop* crops,
                               int64_t crop_count, float* out, void* workspace, size_t workspace_bytes,
                               cudaStream_t stream);

}  // namespace facesight
