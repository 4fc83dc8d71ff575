// CUDA variant of letterbox.h: the same resize + normalise (all ResizeModes, grey/RGB/RGBA, any row
// stride, NCHW/NHWC), a whole batch in one launch, with results equal to the CPU kernel's (the same
// double-precision sample positions and unfused float lerps; see cuda_util.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "vision/letterbox.h"

namespace facesight {

// Scratch for LetterboxCuda: none (sample positions are computed per pixel). Kept for the convention.
size_t LetterboxCudaWorkspaceSize(const LetterboxParams& params, int64_t frame_count);

// All pointers are device pointers:
//   frames    device array of frame_count ImageU8 whose `data` point to device memory (the caller
//             uploads pixels and descriptors together; the kernel reads sizes from them, so nothing
//             crosses back to the host),
//   out       frame_count · 3 · out_height · out_width floats, layout per params.norm,
//   geometry  frame_count entries (as ComputeLetterboxGeometry), or null.
// Enqueues on `stream` and returns without waiting.
CudaStatus LetterboxCuda(const LetterboxParams& params, const ImageU8* frames, int64_t frame_count, float* out,
                         LetterboxGeometry* geometry, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace facesight
