#include "engine/arena_layout.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace facesight {

int64_t LayOutArena(const std::vector<ArenaValue>& values, std::vector<int64_t>* offsets) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a].size > values[b].size; });
  offsets->assign(values.size(), 0);
  std::vector<size_t> placed;
  int64_t arena = 0;
  for (size_t k : order) {
    const ArenaValue& v = values[k];
    std::vector<std::pair<int64_t, int64_t>> busy;  // ranges taken by values alive at the same time
    for (size_t j : placed)
      if (!(values[j].last_read < v.first_write || v.last_read < values[j].first_write))
        busy.emplace_back((*offsets)[j], (*offsets)[j] + values[j].size);
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& r : busy) {
      if (offset + v.size <= r.first) break;
      offset = std::max(offset, r.second);
    }
    (*offsets)[k] = offset;
    placed.push_back(k);
    arena = std::max(arena, offset + v.size);
  }
  return arena;
}

}  // namespace facesight
