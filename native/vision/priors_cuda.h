// CUDA variants of priors.h: prior generation, and RetinaFace / SSD decoding into compact candidates.
// The CPU decoders emit candidates in anchor order; these emit them sorted by (score descending,
// anchor ascending) — the order NMS visits them in — so the result is deterministic and equals the
// CPU's after the same sort. The candidate count stays on the device (`count`), so decode → NMS runs
// without a round trip to the host.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "vision/priors.h"

namespace facesight {

// priors: PriorCount(params) × 4 floats on the device, equal to GeneratePriors's. No scratch.
CudaStatus GeneratePriorsCuda(const PriorParams& params, float* priors, cudaStream_t stream);

// Scratch for decoding `anchors` anchors (sort keys and the sort's temporary storage).
size_t DecodeCudaWorkspaceSize(int64_t anchors);

// Device pointers throughout. out: Candidates with capacity `anchors` (landmarks and anchor may be
// null, as on the CPU). count: one int32 on the device, set to the candidate count.
CudaStatus DecodeRetinaFaceCuda(const RetinaDecodeParams& params, const float* priors, int64_t anchors,
                                const float* loc, const float* conf, const float* landms, const Candidates& out,
                                int32_t* count, void* workspace, size_t workspace_bytes, cudaStream_t stream);

CudaStatus DecodeSsdCuda(const SsdDecodeParams& params, const float* anchors, int64_t anchor_count, const float* deltas,
                         const float* scores, const Candidates& out, int32_t* count, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream);

}  // namespace facesight
