#include "engine/graph_passes.h"

#include <cmath>
#include <limits>
#include <map>

namespace facesight {

namespace {

std::map<std::string, int> CountReaders(const OnnxModel& m) {
  std::map<std::string, int> readers;
  for (const Node& n : m.nodes)
    for (const std::string& in : n.inputs) ++readers[in];
  for (const ValueInfo& out : m.outputs) readers[out.name] += 2;  // a graph output is never fused away
  return readers;
}

const HostTensor* FloatConstant(const OnnxModel& m, const std::string& name) {
  auto it = m.initializers.find(name);
  return it != m.initializers.end() && it->second.dtype == DType::Float32 ? &it->second : nullptr;
}

// Index of the single node reading `value`, or -1.
int SoleReader(const OnnxModel& m, const std::map<std::string, int>& readers, const std::string& value) {
  auto it = readers.find(value);
  if (it == readers.end() || it->second != 1) return -1;
  for (size_t k = 0; k < m.nodes.size(); ++k)
    for (const std::string& in : m.nodes[k].inputs)
      if (in == value) return static_cast<int>(k);
  return -1;
}

Attribute FloatAttr(float v) { Attribute a; a.kind = Attribute::Kind::Float; a.f = v; return a; }
Attribute StringAttr(const std::string& s) { Attribute a; a.kind = Attribute::Kind::String; a.s = s; return a; }

}  // namespace

void FoldBatchNorm(OnnxModel& m) {
  auto readers = CountReaders(m);
  std::vector<bool> removed(m.nodes.size(), false);
  for (size_t k = 0; k < m.nodes.size(); ++k) {
    Node& producer = m.nodes[k];
    const bool is_conv = producer.op_type == "Conv";
    const bool is_gemm = producer.op_type == "Gemm" && producer.Int("transA", 0) == 0 &&
                         producer.Float("alpha", 1.f) == 1.f && producer.Float("beta", 1.f) == 1.f;
    if ((!is_conv && !is_gemm) || producer.outputs.size() != 1 || producer.inputs.size() < 2) continue;
    int r = SoleReader(m, readers, producer.outputs[0]);
    if (r < 0 || m.nodes[r].op_type != "BatchNormalization" || m.nodes[r].inputs.size() < 5 ||
        m.nodes[r].outputs.size() != 1 || m.nodes[r].inputs[0] != producer.outputs[0])
      continue;
    Node& bn = m.nodes[r];
    const HostTensor* w = FloatConstant(m, producer.inputs[1]);
    const HostTensor* gamma = FloatConstant(m, bn.inputs[1]);
    const HostTensor* beta = FloatConstant(m, bn.inputs[2]);
    const HostTensor* mean = FloatConstant(m, bn.inputs[3]);
    const HostTensor* var = FloatConstant(m, bn.inputs[4]);
    const HostTensor* bias = producer.inputs.size() > 2 && !producer.inputs[2].empty()
                                 ? FloatConstant(m, producer.inputs[2]) : nullptr;
    if (!w || !gamma || !beta || !mean || !var || w->shape.size() < 2) continue;
    if (producer.inputs.size() > 2 && !producer.inputs[2].empty() && !bias) continue;
    // Output channels: Conv weight [Cout, ...]; Gemm B [K, N] or, with transB, [N, K].
    const bool trans_b = is_gemm && producer.Int("transB", 0) != 0;
    const int64_t channels = is_conv || trans_b ? w->shape[0] : w->shape[1];
    if (gamma->size() != channels || beta->size() != channels || mean->size() != channels || var->size() != channels) continue;
    if (bias && bias->size() != channels) continue;
    const float eps = bn.Float("epsilon", 1e-5f);
    HostTensor new_w = *w;
    std::vector<float> new_b(channels);
    const int64_t per_channel = w->size() / channels;
    for (int64_t c = 0; c < channels; ++c) {
      const double scale = gamma->f[c] / std::sqrt(static_cast<double>(var->f[c]) + eps);
      if (is_conv || trans_b) {
        for (int64_t j = 0; j < per_channel; ++j) new_w.f[c * per_channel + j] *= static_cast<float>(scale);
      } else {
        for (int64_t j = 0; j < w->shape[0]; ++j) new_w.f[j * channels + c] *= static_cast<float>(scale);
      }
      new_b[c] = static_cast<float>(((bias ? bias->f[c] : 0.f) - mean->f[c]) * scale + beta->f[c]);
    }
    const std::string base = producer.outputs[0] + "/bn_folded";
    m.initializers[base + "_w"] = std::move(new_w);
    m.initializers[base + "_b"] = HostTensor::Float({channels}, std::move(new_b));
    producer.inputs.resize(3);
    producer.inputs[1] = base + "_w";
    producer.inputs[2] = base + "_b";
    if (is_gemm) producer.attrs.erase("beta");
    producer.outputs[0] = bn.outputs[0];
    removed[r] = true;
  }
  std::vector<Node> kept;
  for (size_t k = 0; k < m.nodes.size(); ++k)
    if (!removed[k]) kept.push_back(std::move(m.nodes[k]));
  m.nodes = std::move(kept);
}

void FuseActivations(OnnxModel& m) {
  auto readers = CountReaders(m);
  std::vector<bool> removed(m.nodes.size(), false);
  for (size_t k = 0; k < m.nodes.size(); ++k) {
    Node& conv = m.nodes[k];
    if (conv.op_type != "Conv" || conv.outputs.size() != 1 || conv.inputs.size() < 2 || conv.Has(kFusedActivation)) continue;
    int r = SoleReader(m, readers, conv.outputs[0]);
    if (r < 0 || m.nodes[r].outputs.size() != 1 || m.nodes[r].inputs.empty() || m.nodes[r].inputs[0] != conv.outputs[0]) continue;
    Node& act = m.nodes[r];
    const HostTensor* w = FloatConstant(m, conv.inputs[1]);
    if (act.op_type == "Relu") {
      conv.attrs[kFusedActivation] = StringAttr("Relu");
    } else if (act.op_type == "LeakyRelu") {
      conv.attrs[kFusedActivation] = StringAttr("LeakyRelu");
      conv.attrs[kFusedAlpha] = FloatAttr(act.Float("alpha", 0.01f));
    } else if (act.op_type == "Clip") {
      float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
      if (act.inputs.size() > 1 || act.Has("min") || act.Has("max")) {
        lo = act.Float("min", lo);
        hi = act.Float("max", hi);
      }
      bool constant = true;
      auto bound = [&](size_t idx, float* out) {
        if (act.inputs.size() <= idx || act.inputs[idx].empty()) return;
        const HostTensor* t = FloatConstant(m, act.inputs[idx]);
        if (!t || t->size() != 1) { constant = false; return; }
        *out = t->f[0];
      };
      bound(1, &lo);
      bound(2, &hi);
      if (!constant) continue;
      conv.attrs[kFusedActivation] = StringAttr("Clip");
      conv.attrs[kFusedAlpha] = FloatAttr(lo);
      conv.attrs[kFusedBeta] = FloatAttr(hi);
    } else if (act.op_type == "PRelu" && act.inputs.size() == 2 && w) {
      const HostTensor* slope = FloatConstant(m, act.inputs[1]);
      if (!slope) continue;
      const int64_t channels = w->shape[0];
      // Per-channel slopes broadcast over H and W ([C,1,1] from PyTorch), or one shared slope.
      const Shape& s = slope->shape;
      bool per_channel = slope->size() == channels && s.size() >= 3 && s[s.size() - 1] == 1 && s[s.size() - 2] == 1;
      if (!per_channel && slope->size() != 1) continue;
      std::vector<float> values(channels, slope->f[0]);
      if (per_channel) values = slope->f;
      const std::string name = act.outputs[0] + "/prelu_slope";
      m.initializers[name] = HostTensor::Float({channels}, std::move(values));
      if (conv.inputs.size() < 3) conv.inputs.resize(3);
      conv.inputs.push_back(name);
      conv.attrs[kFusedActivation] = StringAttr("PRelu");
    } else {
      continue;
    }
    conv.outputs[0] = act.outputs[0];
    removed[r] = true;
  }
  std::vector<Node> kept;
  for (size_t k = 0; k < m.nodes.size(); ++k)
    if (!removed[k]) kept.push_back(std::move(m.nodes[k]));
  m.nodes = std::move(kept);
}

void FuseSeparableConvs(OnnxModel& m) {
  constexpr int64_t kBlock = 16;                       // ops/layout.h kChannelBlock
  auto readers = CountReaders(m);
  auto optional = [&](const Node& n, size_t k) -> std::string { return n.inputs.size() > k ? n.inputs[k] : ""; };
  auto constant_or_absent = [&](const Node& n, size_t k) {
    const std::string name = optional(n, k);
    return name.empty() || FloatConstant(m, name) != nullptr;
  };
  auto all_ones = [](const Node& n, const char* key) {
    for (int64_t v : n.Ints(key)) if (v != 1) return false;
    return true;
  };
  std::vector<bool> removed(m.nodes.size(), false);
  for (size_t k = 0; k < m.nodes.size(); ++k) {
    const Node& dw = m.nodes[k];
    if (dw.op_type != "Conv" || dw.outputs.size() != 1 || dw.inputs.size() < 2) continue;
    const HostTensor* dw_w = FloatConstant(m, dw.inputs[1]);
    if (!dw_w || dw_w->shape.size() != 4 || dw_w->shape[1] != 1) continue;
    const int64_t C = dw_w->shape[0];
    if (dw.Int("group", 1) != C || !constant_or_absent(dw, 2) || !constant_or_absent(dw, 3)) continue;
    const int r = SoleReader(m, readers, dw.outputs[0]);
    if (r < 0 || removed[r]) continue;
    const Node& pw = m.nodes[r];
    if (pw.op_type != "Conv" || pw.outputs.size() != 1 || pw.inputs.size() < 2 || pw.inputs[0] != dw.outputs[0]) continue;
    const HostTensor* pw_w = FloatConstant(m, pw.inputs[1]);
    if (!pw_w || pw_w->shape != Shape{pw_w->shape[0], C, 1, 1}) continue;
    const int64_t M = pw_w->shape[0];
    if (M % kBlock || pw.Int("group", 1) != 1 || !all_ones(pw, "strides") ||
        !all_ones(pw, "dilations") || !constant_or_absent(pw, 2) || !constant_or_absent(pw, 3))
      continue;
    bool unpadded = pw.Str("auto_pad", "NOTSET") == "NOTSET" || pw.Str("auto_pad", "NOTSET") == "VALID";
    for (int64_t p : pw.Ints("pads")) unpadded = unpadded && p == 0;
    if (!unpadded) continue;
    Node fused;
    fused.name = pw.name;
    fused.op_type = kSeparableConv;
    fused.domain = kInternalDomain;
    fused.inputs = {dw.inputs[0], dw.inputs[1], optional(dw, 2), optional(dw, 3), pw.inputs[1], optional(pw, 2), optional(pw, 3)};
    fused.outputs = pw.outputs;
    for (const auto& [key, value] : dw.attrs) fused.attrs[std::string("dw.") + key] = value;
    for (const auto& [key, value] : pw.attrs) fused.attrs[std::string("pw.") + key] = value;
    fused.attrs[std::string("dw.") + kPartName] = StringAttr(dw.name);
    fused.attrs[std::string("pw.") + kPartName] = StringAttr(pw.name);
    m.nodes[k] = std::move(fused);  // at the depthwise node's place: the pointwise one's other inputs are constants
    removed[r] = true;
  }
  std::vector<Node> kept;
  for (size_t k = 0; k < m.nodes.size(); ++k)
    if (!removed[k]) kept.push_back(std::move(m.nodes[k]));
  m.nodes = std::move(kept);
}

}  // namespace facesight
