#include "common/buffer_cache.h"

#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace facesight {

namespace {

constexpr size_t kMinCachedFloats = 16 * 1024;          // 64 KiB: smaller blocks come from malloc's own pools
constexpr size_t kMaxCachedBytes = size_t{256} << 20;   // total kept for reuse

struct Cache {
  std::mutex mutex;
  std::map<size_t, std::vector<float*>> free_by_size;
  size_t cached_bytes = 0;
};

Cache& TheCache() {
  static Cache* cache = new Cache();  // never destroyed: buffers may be released during exit
  return *cache;
}

}  // namespace

float* AcquireFloats(size_t count) {
  if (count == 0) count = 1;
  if (count >= kMinCachedFloats) {
    Cache& c = TheCache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_by_size.find(count);
    if (it != c.free_by_size.end() && !it->second.empty()) {
      float* p = it->second.back();
      it->second.pop_back();
      c.cached_bytes -= count * sizeof(float);
      return p;
    }
  }
  // 64-byte aligned: kernels may store whole cache lines (streaming stores need it).
  return static_cast<float*>(::operator new[](count * sizeof(float), std::align_val_t(64)));
}

void ReleaseFloats(float* data, size_t count) {
  if (!data) return;
  if (count == 0) count = 1;
  if (count >= kMinCachedFloats) {
    Cache& c = TheCache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached_bytes + count * sizeof(float) <= kMaxCachedBytes) {
      c.free_by_size[count].push_back(data);
      c.cached_bytes += count * sizeof(float);
      return;
    }
  }
  ::operator delete[](data, std::align_val_t(64));
}

}  // namespace facesight
