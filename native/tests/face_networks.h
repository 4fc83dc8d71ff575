// The two face networks written from C++ (the GPU machine has no Node.js): RetinaFace-mnet0.25 and
// FaceNet-MobileNetV1, node for node as lib/graphs/retinaface.ts and lib/graphs/facenet.ts emit them
// (unfused Conv → BatchNormalization → activation, the Shape / Slice / Concat sizes of the FPN's
// Resize, the Shape / Gather / Unsqueeze / Concat reshape of ClassHead, the ReduceL2 / Clip / Div
// normalisation), with seeded random weights at the scales of lib/graphs/layers.ts (uniform draws of the
// same standard deviation instead of normal ones).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "onnx_writer.h"
#include "test_util.h"

namespace facesight_test {

class NetWriter {
 public:
  explicit NetWriter(uint32_t seed) : seed_(seed) {}
  OnnxWriter m;

  // nn.Conv2d named `key`; `linear`: std √(1/fan_in) instead of He's √(2/fan_in).
  std::string Conv(const std::string& x, const std::string& key, int64_t in_c, int64_t out_c, int64_t k, int64_t stride = 1,
                   int64_t pad = 0, int64_t groups = 1, bool bias = false, bool linear = false) {
    const int64_t fan_in = in_c / groups * k * k;
    std::vector<std::string> inputs{x, Param(key + ".weight", {out_c, in_c / groups, k, k}, std::sqrt((linear ? 1.0 : 2.0) / fan_in))};
    if (bias) {
      const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
      inputs.push_back(Uniform(key + ".bias", {out_c}, -bound, bound));
    }
    m.Node("Conv", inputs, {key},
           {Attr::Is("dilations", {1, 1}), Attr::I("group", groups), Attr::Is("kernel_shape", {k, k}),
            Attr::Is("pads", {pad, pad, pad, pad}), Attr::Is("strides", {stride, stride})});
    return key;
  }
  // A Linear weight [out, in] (std √(1/in)).
  std::string Linear(const std::string& key, int64_t out, int64_t in) { return Param(key, {out, in}, std::sqrt(1.0 / in)); }
  std::string BatchNorm(const std::string& x, const std::string& key, int64_t c, float eps = 1e-5f) {
    m.Node("BatchNormalization",
           {x, Uniform(key + ".weight", {c}, 0.5f, 1.5f), Param(key + ".bias", {c}, 0.1), Param(key + ".running_mean", {c}, 0.1),
            Uniform(key + ".running_var", {c}, 0.5f, 1.5f)},
           {key}, {Attr::F("epsilon", eps), Attr::F("momentum", 0.9f)});
    return key;
  }
  std::string Leaky(const std::string& x, const std::string& name, float slope) {
    m.Node("LeakyRelu", {x}, {name}, {Attr::F("alpha", slope)});
    return name;
  }
  std::string Relu(const std::string& x, const std::string& name) {
    m.Node("Relu", {x}, {name});
    return name;
  }
  // nn.ReLU6 as torch exports it at opset ≥ 11: Clip with min / max inputs.
  std::string Relu6(const std::string& x, const std::string& name) {
    m.Node("Clip", {x, FloatScalar(0.f), FloatScalar(6.f)}, {name});
    return name;
  }
  std::string FloatScalar(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    const std::string name = "const_f32_" + std::to_string(bits);
    if (constants_.insert(name).second) m.Initializer(name, {}, {v});
    return name;
  }
  std::string Int64Vector(const std::vector<int64_t>& values) {
    std::string name = "const_i64";
    for (int64_t v : values) name += "_" + std::to_string(v);
    if (constants_.insert(name).second) m.IntInitializer(name, {static_cast<int64_t>(values.size())}, values);
    return name;
  }
  std::string Constant(const std::string& name, const std::vector<int64_t>& dims, const std::vector<int64_t>& values) {
    m.Node("Constant", {}, {name}, {Attr::T("value", dims, values)});
    return name;
  }

 private:
  // Zero-mean uniform values of standard deviation `std`.
  std::string Param(const std::string& key, const std::vector<int64_t>& dims, double std) {
    const float a = static_cast<float>(std * std::sqrt(3.0));
    return Uniform(key, dims, -a, a);
  }
  std::string Uniform(const std::string& key, const std::vector<int64_t>& dims, float lo, float hi) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    m.Initializer(key, dims, RandomVector(static_cast<size_t>(n), seed_ + 7919u * ++count_, lo, hi));
    return key;
  }
  uint32_t seed_;
  uint32_t count_ = 0;
  std::set<std::string> constants_;
};

// RetinaFace, MobileNetV1 ×0.25 backbone (retinaface.ts): input `input0` [N, 3, H, W]; outputs `loc`
// [N, A, 4], `conf` [N, A, 2] (softmax), `landms` [N, A, 10].
inline std::vector<uint8_t> RetinaFaceMnet025Onnx(uint32_t seed) {
  NetWriter w(seed);
  OnnxWriter& m = w.m;
  constexpr float kSlope = 0.1f;
  constexpr int64_t kFpn = 64;
  auto conv_bn = [&](const std::string& x, const std::string& key, int64_t in_c, int64_t out_c, int64_t k, int64_t stride, bool act) {
    std::string y = w.Conv(x, key + ".0", in_c, out_c, k, stride, (k - 1) / 2);
    y = w.BatchNorm(y, key + ".1", out_c);
    return act ? w.Leaky(y, key + ".2", kSlope) : y;
  };
  auto conv_dw = [&](const std::string& x, const std::string& key, int64_t in_c, int64_t out_c, int64_t stride) {
    std::string y = w.Conv(x, key + ".0", in_c, in_c, 3, stride, 1, in_c);
    y = w.Leaky(w.BatchNorm(y, key + ".1", in_c), key + ".2", kSlope);
    y = w.Conv(y, key + ".3", in_c, out_c, 1);
    return w.Leaky(w.BatchNorm(y, key + ".4", out_c), key + ".5", kSlope);
  };
  struct Dw { int64_t in, out, stride; };
  const std::vector<Dw> stage1{{8, 16, 1}, {16, 32, 2}, {32, 32, 1}, {32, 64, 2}, {64, 64, 1}};
  const std::vector<Dw> stage2{{64, 128, 2}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}};
  const std::vector<Dw> stage3{{128, 256, 2}, {256, 256, 1}};

  m.Input("input0", {-1, 3, -1, -1});
  std::string x = conv_bn("input0", "body.stage1.0", 3, 8, 3, 2, true);
  for (size_t i = 0; i < stage1.size(); ++i) x = conv_dw(x, "body.stage1." + std::to_string(i + 1), stage1[i].in, stage1[i].out, stage1[i].stride);
  const std::string s1 = x;
  for (size_t i = 0; i < stage2.size(); ++i) x = conv_dw(x, "body.stage2." + std::to_string(i), stage2[i].in, stage2[i].out, stage2[i].stride);
  const std::string s2 = x;
  for (size_t i = 0; i < stage3.size(); ++i) x = conv_dw(x, "body.stage3." + std::to_string(i), stage3[i].in, stage3[i].out, stage3[i].stride);
  const std::string s3 = x;

  // F.interpolate(x, size=like's H×W, mode='nearest') as torch exports it at opset 13.
  auto resize_like = [&](const std::string& v, const std::string& like, const std::string& name) {
    m.Node("Shape", {v}, {name + ".shape_x"});
    m.Node("Shape", {like}, {name + ".shape_like"});
    const std::string zero = w.Int64Vector({0}), two = w.Int64Vector({2}), four = w.Int64Vector({4});
    m.Node("Slice", {name + ".shape_x", zero, two, zero}, {name + ".slice_nc"});
    m.Node("Slice", {name + ".shape_like", two, four, zero}, {name + ".slice_hw"});
    m.Node("Concat", {name + ".slice_nc", name + ".slice_hw"}, {name + ".sizes"}, {Attr::I("axis", 0)});
    m.Node("Resize", {v, "", "", name + ".sizes"}, {name},
           {Attr::S("coordinate_transformation_mode", "asymmetric"), Attr::F("cubic_coeff_a", -0.75f), Attr::S("mode", "nearest"),
            Attr::S("nearest_mode", "floor")});
    return name;
  };
  std::string out1 = conv_bn(s1, "fpn.output1", 64, kFpn, 1, 1, true);
  std::string out2 = conv_bn(s2, "fpn.output2", 128, kFpn, 1, 1, true);
  const std::string out3 = conv_bn(s3, "fpn.output3", 256, kFpn, 1, 1, true);
  m.Node("Add", {out2, resize_like(out3, out2, "fpn.up3")}, {"fpn.add2"});
  out2 = conv_bn("fpn.add2", "fpn.merge2", kFpn, kFpn, 3, 1, true);
  m.Node("Add", {out1, resize_like(out2, out1, "fpn.up2")}, {"fpn.add1"});
  out1 = conv_bn("fpn.add1", "fpn.merge1", kFpn, kFpn, 3, 1, true);

  auto ssh = [&](const std::string& v, const std::string& key) {
    const std::string c3 = conv_bn(v, key + ".conv3X3", kFpn, kFpn / 2, 3, 1, false);
    const std::string c5a = conv_bn(v, key + ".conv5X5_1", kFpn, kFpn / 4, 3, 1, true);
    const std::string c5 = conv_bn(c5a, key + ".conv5X5_2", kFpn / 4, kFpn / 4, 3, 1, false);
    const std::string c7a = conv_bn(c5a, key + ".conv7X7_2", kFpn / 4, kFpn / 4, 3, 1, true);
    const std::string c7 = conv_bn(c7a, key + ".conv7x7_3", kFpn / 4, kFpn / 4, 3, 1, false);
    m.Node("Concat", {c3, c5, c7}, {key + ".cat"}, {Attr::I("axis", 1)});
    return w.Relu(key + ".cat", key + ".relu");
  };
  const std::vector<std::string> features{ssh(out1, "ssh1"), ssh(out2, "ssh2"), ssh(out3, "ssh3")};

  struct Head { const char* key; int64_t per_anchor; };
  const Head heads[] = {{"ClassHead", 2}, {"BboxHead", 4}, {"LandmarkHead", 10}};
  std::vector<std::vector<std::string>> per_head;
  for (const Head& h : heads) {
    std::vector<std::string> levels;
    for (size_t level = 0; level < features.size(); ++level) {
      const std::string key = std::string(h.key) + "." + std::to_string(level);
      const std::string conv = w.Conv(features[level], key + ".conv1x1", kFpn, 2 * h.per_anchor, 1, 1, 0, 1, true, true);
      m.Node("Transpose", {conv}, {key + ".permute"}, {Attr::Is("perm", {0, 2, 3, 1})});
      std::string shape;
      if (std::string(h.key) == "ClassHead") {  // [x.shape[0], -1, k] built at run time, with Constant nodes
        m.Node("Shape", {key + ".permute"}, {key + ".shape"});
        m.Node("Gather", {key + ".shape", w.Constant(key + ".index0", {}, {0})}, {key + ".gather"}, {Attr::I("axis", 0)});
        m.Node("Unsqueeze", {key + ".gather", w.Constant(key + ".axes0", {1}, {0})}, {key + ".unsqueeze"});
        m.Node("Concat", {key + ".unsqueeze", w.Constant(key + ".minus1", {1}, {-1}), w.Constant(key + ".k", {1}, {h.per_anchor})},
               {key + ".view_shape"}, {Attr::I("axis", 0)});
        shape = key + ".view_shape";
      } else {
        shape = w.Int64Vector({0, -1, h.per_anchor});
      }
      m.Node("Reshape", {key + ".permute", shape}, {key + ".view"});
      levels.push_back(key + ".view");
    }
    per_head.push_back(levels);
  }
  m.Node("Concat", per_head[1], {"loc"}, {Attr::I("axis", 1)});
  m.Node("Concat", per_head[0], {"cat_class"}, {Attr::I("axis", 1)});
  m.Node("Softmax", {"cat_class"}, {"conf"}, {Attr::I("axis", -1)});
  m.Node("Concat", per_head[2], {"landms"}, {Attr::I("axis", 1)});
  m.Output("loc");
  m.Output("conf");
  m.Output("landms");
  return m.Bytes(13);
}

// FaceNet, MobileNetV1 ×1.0 backbone (facenet.ts): input `input` [N, 3, 160, 160]; output `embedding`
// [N, 128], L2-normalised.
inline std::vector<uint8_t> FaceNetMobileNetV1Onnx(uint32_t seed) {
  NetWriter w(seed);
  OnnxWriter& m = w.m;
  auto conv_dw = [&](const std::string& x, const std::string& key, int64_t in_c, int64_t out_c, int64_t stride) {
    std::string y = w.Conv(x, key + ".0", in_c, in_c, 3, stride, 1, in_c);
    y = w.Relu6(w.BatchNorm(y, key + ".1", in_c), key + ".2");
    y = w.Conv(y, key + ".3", in_c, out_c, 1);
    return w.Relu6(w.BatchNorm(y, key + ".4", out_c), key + ".5");
  };
  struct Dw { int64_t in, out, stride; };
  const std::vector<std::vector<Dw>> stages{
      {{32, 64, 1}, {64, 128, 2}, {128, 128, 1}, {128, 256, 2}, {256, 256, 1}},
      {{256, 512, 2}, {512, 512, 1}, {512, 512, 1}, {512, 512, 1}, {512, 512, 1}, {512, 512, 1}},
      {{512, 1024, 2}, {1024, 1024, 1}}};
  m.Input("input", {-1, 3, 160, 160});
  std::string x = w.Conv("input", "backbone.model.stage1.0.0", 3, 32, 3, 2, 1);
  x = w.Relu6(w.BatchNorm(x, "backbone.model.stage1.0.1", 32), "backbone.model.stage1.0.2");
  for (size_t s = 0; s < stages.size(); ++s) {
    const size_t first = s == 0 ? 1 : 0;
    for (size_t i = 0; i < stages[s].size(); ++i)
      x = conv_dw(x, "backbone.model.stage" + std::to_string(s + 1) + "." + std::to_string(first + i), stages[s][i].in,
                  stages[s][i].out, stages[s][i].stride);
  }
  m.Node("GlobalAveragePool", {x}, {"avg"});
  m.Node("Flatten", {"avg"}, {"flatten"}, {Attr::I("axis", 1)});
  m.Node("Gemm", {"flatten", w.Linear("Bottleneck.weight", 128, 1024)}, {"Bottleneck"},
         {Attr::F("alpha", 1.f), Attr::F("beta", 1.f), Attr::I("transB", 1)});
  const std::string bn = w.BatchNorm("Bottleneck", "last_bn", 128, 1e-3f);
  m.Node("ReduceL2", {bn}, {"normalize.norm"}, {Attr::Is("axes", {1}), Attr::I("keepdims", 1)});
  m.Node("Clip", {"normalize.norm", w.FloatScalar(1e-12f), ""}, {"normalize.clamp"});
  m.Node("Div", {bn, "normalize.clamp"}, {"embedding"});
  m.Output("embedding");
  return m.Bytes(13);
}

}  // namespace facesight_test
