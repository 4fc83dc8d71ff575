#include "ops/pool_geometry.h"

#include <algorithm>

namespace facesight {

namespace {

// Output size of one axis; pads are filled for auto_pad modes.
int64_t AxisOutput(const Op& op, const std::string& auto_pad, int64_t in, int64_t k, int64_t s, int64_t d,
                   int64_t* pad_begin, int64_t* pad_end, bool ceil_mode) {
  const int64_t effective = (k - 1) * d + 1;
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const int64_t out = (in + s - 1) / s;
    const int64_t total = std::max<int64_t>(0, (out - 1) * s + effective - in);
    *pad_begin = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    *pad_end = total - *pad_begin;
    return out;
  }
  if (auto_pad == "VALID") *pad_begin = *pad_end = 0;
  const int64_t span = in + *pad_begin + *pad_end - effective;
  if (span < 0)
    Fail(ErrorCode::Input, op.node().Describe(), ": window ", effective, " is larger than the padded input ", in + *pad_begin + *pad_end);
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // ceil_mode: the last window must start inside the input or the left padding (ONNX / PyTorch rule).
  if (ceil_mode && (out - 1) * s >= in + *pad_begin) --out;
  return out;
}

}  // namespace

Window2d ResolveWindow2d(const Op& op, int64_t H, int64_t W, int64_t KH, int64_t KW, bool ceil_mode) {
  const Node& n = op.node();
  Window2d g{};
  g.kernel_h = KH;
  g.kernel_w = KW;
  auto strides = n.Ints("strides", {1, 1});
  auto dilations = n.Ints("dilations", {1, 1});
  auto pads = n.Ints("pads", {0, 0, 0, 0});
  if (strides.size() != 2 || dilations.size() != 2 || pads.size() != 4)
    Fail(ErrorCode::Model, n.Describe(), ": strides, dilations and pads must describe 2 spatial axes");
  for (int64_t v : strides) if (v < 1) Fail(ErrorCode::Model, n.Describe(), ": strides must be ≥ 1");
  for (int64_t v : dilations) if (v < 1) Fail(ErrorCode::Model, n.Describe(), ": dilations must be ≥ 1");
  for (int64_t v : pads) if (v < 0) Fail(ErrorCode::Model, n.Describe(), ": negative pads are not supported");
  g.stride_h = strides[0]; g.stride_w = strides[1];
  g.dilation_h = dilations[0]; g.dilation_w = dilations[1];
  g.pad_top = pads[0]; g.pad_left = pads[1]; g.pad_bottom = pads[2]; g.pad_right = pads[3];
  const std::string auto_pad = n.Str("auto_pad", "NOTSET");
  g.out_h = AxisOutput(op, auto_pad, H, KH, g.stride_h, g.dilation_h, &g.pad_top, &g.pad_bottom, ceil_mode);
  g.out_w = AxisOutput(op, auto_pad, W, KW, g.stride_w, g.dilation_w, &g.pad_left, &g.pad_right, ceil_mode);
  return g;
}

}  // namespace facesight
