// Where a plan's values go in its one arena: values whose lifetimes (first write … last read, in
// steps) overlap get disjoint ranges; the others share space. Greedy, biggest value first. Used by
// the CPU planner (floats) and the CUDA planner (bytes) alike.
#pragma once
#include <cstdint>
#include <vector>

namespace facesight {

struct ArenaValue {
  int64_t size;  // already rounded up to the arena's alignment
  int first_write, last_read;
};

// offsets[k]: where values[k] starts. Returns the arena's size.
int64_t LayOutArena(const std::vector<ArenaValue>& values, std::vector<int64_t>* offsets);

}  // namespace facesight
