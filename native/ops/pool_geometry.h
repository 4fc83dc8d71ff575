// Sliding-window geometry shared by Conv and the pooling ops: strides, dilations, explicit pads or
// auto_pad (SAME_UPPER / SAME_LOWER / VALID), and ceil_mode, resolved for one input size.
#pragma once
#include <cstdint>

#include "engine/op.h"

namespace facesight {

struct Window2d {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w, dilation_h, dilation_w;
  int64_t pad_top, pad_left, pad_bottom, pad_right;
  int64_t out_h, out_w;
};

Window2d ResolveWindow2d(const Op& op, int64_t H, int64_t W, int64_t KH, int64_t KW, bool ceil_mode);

}  // namespace facesight
