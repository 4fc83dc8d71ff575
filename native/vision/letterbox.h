// Resize + normalise: a batch of 8-bit frames of any sizes (grey, RGB, RGBA; any row stride) into one
// float tensor [N, 3, H, W] (or [N, H, W, 3]) of a fixed size, either stretched or letterboxed (aspect
// ratio kept, content centred, bars of a constant colour).
//
// Sampling is bilinear with half-pixel centres: output pixel x (centre x + 0.5) reads the source at
// (x + 0.5 − offset) / scale − 0.5, clamped to [0, size − 1] (edge pixels repeat) — the mapping of
// OpenCV's INTER_LINEAR and PyTorch's align_corners=False. No antialiasing: a strong downscale samples
// rather than averages. In continuous coordinates (a pixel spans [x, x + 1)) the mapping is exactly
// out = src · scale + offset, so boxes found in the tensor map back with MapToSource.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/thread_pool.h"
#include "vision/image.h"

namespace facesight {

enum class ResizeMode : uint8_t {
  Stretch,    // content fills the output; x and y scales differ
  Letterbox,  // one scale, content centred, the rest filled with pad_rgb
  // face-api / TensorFlow.js: pad bottom and right with pad_rgb to a square of side max(W, H), then
  // resize that square with TensorFlow's legacy bilinear sampling (source = output · scale, no
  // half-pixel offset). Geometry maps back as face-api does: scale = round(W·out/side) / W per axis.
  PadSquare,
};

struct LetterboxParams {
  int32_t out_width = 0, out_height = 0;
  ResizeMode mode = ResizeMode::Letterbox;
  float pad_rgb[3] = {128.f, 128.f, 128.f};  // bar colour in pixel units, RGB (the seed's grey)
  PixelNormalization norm;
};

// Where a frame's content lies in the output: the rectangle [x, x + width) × [y, y + height), and the
// scales width / source width and height / source height. The letterbox sizes follow the seed
// (bubbliiiing's letterbox_image): the limiting side fills the output, the other is
// floor(source · scale) (at least 1), and the offset is floor((out − size) / 2).
struct LetterboxGeometry {
  int32_t x = 0, y = 0, width = 0, height = 0;
  float scale_x = 1.f, scale_y = 1.f;
};

LetterboxGeometry ComputeLetterboxGeometry(const LetterboxParams& params, int32_t src_width, int32_t src_height);

// Scratch for Letterbox: one column table per frame.
size_t LetterboxWorkspaceSize(const LetterboxParams& params, int64_t frame_count);

// out: frame_count · 3 · out_height · out_width floats. geometry: frame_count entries, or null.
// workspace: LetterboxWorkspaceSize bytes, aligned to 4.
void Letterbox(const LetterboxParams& params, const ImageU8* frames, int64_t frame_count, float* out,
               LetterboxGeometry* geometry, void* workspace, ThreadPool* pool);

// Maps n points (x, y pairs, in place) from tensor coordinates back to the source frame's. Boxes as
// (x1, y1, x2, y2) are two points each, five landmarks five points.
void MapToSource(const LetterboxGeometry& geometry, float* xy, int64_t n);

}  // namespace facesight
