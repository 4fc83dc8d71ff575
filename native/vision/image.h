// Pixel types shared by the vision kernels: 8-bit frames as the decoder hands them over, and how a
// kernel turns sampled pixels into a network's float input. Plain structs, so the CUDA variants can
// take them by value.
#pragma once
#include <cstdint>

namespace facesight {

// An interleaved 8-bit image (HWC). channels: 1 grey, 3 RGB, 4 RGBA (alpha is ignored, not
// composited). Rows may be padded: row_stride is in bytes and ≥ width · channels.
struct ImageU8 {
  const uint8_t* data = nullptr;
  int32_t width = 0, height = 0;
  int32_t channels = 3;
  int64_t row_stride = 0;
};

enum class ColorOrder : uint8_t { Rgb, Bgr };
enum class TensorLayout : uint8_t { Nchw, Nhwc };

// Output channel c = (pixel channel order[c] − mean[c]) / std[c], always three channels. mean and std
// are in the output's channel order (a BGR model lists them B, G, R); grey input feeds all three.
struct PixelNormalization {
  ColorOrder order = ColorOrder::Rgb;
  TensorLayout layout = TensorLayout::Nchw;
  float mean[3] = {0.f, 0.f, 0.f};
  float std[3] = {1.f, 1.f, 1.f};
};

}  // namespace facesight
