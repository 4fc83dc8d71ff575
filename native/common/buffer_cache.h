// Reuses large float buffers (network outputs) across runs. Fresh large allocations come from mmap
// and are paid for again with a page fault per 4 KiB on first touch — on virtual machines that is a
// large share of a run (a RetinaFace batch's outputs are tens of MiB). Buffers handed back are kept
// by exact size, up to a bounded total, and reused by the next run of the same shape.
#pragma once
#include <cstddef>
#include <memory>

namespace facesight {

float* AcquireFloats(size_t count);
void ReleaseFloats(float* data, size_t count);

// Owns `count` floats from the cache and gives them back on destruction.
struct CachedFloatsDeleter {
  size_t count = 0;
  void operator()(float* p) const { ReleaseFloats(p, count); }
};
using CachedFloats = std::unique_ptr<float[], CachedFloatsDeleter>;

inline CachedFloats MakeCachedFloats(size_t count) { return CachedFloats(AcquireFloats(count), CachedFloatsDeleter{count}); }

}  // namespace facesight
