// Graph rewrites done once at load: BatchNorm folded into the preceding Conv/Gemm, activations fused
// into the Conv that feeds them. Both only fire when the intermediate value has no other reader.
#pragma once
#include "engine/onnx_model.h"

namespace facesight {

// Internal attribute names a fused Conv carries (the PRelu slope becomes its 4th input).
constexpr const char* kFusedActivation = "facesight.activation";  // Relu | LeakyRelu | Clip | PRelu
constexpr const char* kFusedAlpha = "facesight.alpha";
constexpr const char* kFusedBeta = "facesight.beta";

void FoldBatchNorm(OnnxModel& model);
void FuseActivations(OnnxModel& model);

}  // namespace facesight
