// Graph rewrites done once at load: BatchNorm folded into the preceding Conv/Gemm, activations fused
// into the Conv that feeds them, separable convs fused into one node (CPU engine). Each only fires
// when the intermediate value has no other reader.
#pragma once
#include "engine/onnx_model.h"

namespace facesight {

// Internal attribute names a fused Conv carries (the PRelu slope becomes its 4th input).
constexpr const char* kFusedActivation = "facesight.activation";  // Relu | LeakyRelu | Clip | PRelu
constexpr const char* kFusedAlpha = "facesight.alpha";
constexpr const char* kFusedBeta = "facesight.beta";

// Nodes only graph passes make: op types in this domain (ParseOnnx rejects it in model files).
constexpr const char* kInternalDomain = "facesight";
// A depthwise Conv + the 1×1 Conv that alone reads it: inputs [x, dw weight, dw bias, dw slope,
// pw weight, pw bias, pw slope] ("" where absent), each part's attributes prefixed "dw." / "pw.",
// each part's node name in "<prefix>facesight.name".
constexpr const char* kSeparableConv = "SeparableConv";
constexpr const char* kPartName = "facesight.name";

void FoldBatchNorm(OnnxModel& model);
void FuseActivations(OnnxModel& model);
// Depthwise → pointwise pairs whose pointwise conv writes whole channel blocks: the depthwise output is
// computed band by band and never goes to memory (SeparableConvOp in ops/conv.cpp). Run after the two
// above.
void FuseSeparableConvs(OnnxModel& model);

}  // namespace facesight
