// Multidirectional (NumPy-style) broadcasting shared by the binary ops and Expand.
#pragma once
#include <algorithm>
#include <vector>

#include "common/error.h"
#include "common/tensor.h"

namespace facesight {

// The broadcast shape of a and b, or an empty optional-like flag when incompatible.
inline bool BroadcastShape(const Shape& a, const Shape& b, Shape* out) {
  const size_t rank = std::max(a.size(), b.size());
  out->assign(rank, 1);
  for (size_t k = 0; k < rank; ++k) {
    const int64_t da = k < rank - a.size() ? 1 : a[k - (rank - a.size())];
    const int64_t db = k < rank - b.size() ? 1 : b[k - (rank - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    (*out)[k] = da == 1 ? db : da;
  }
  return true;
}

// Element strides of `in` seen through the broadcast shape `out` (0 along broadcast axes).
inline std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (size_t k = 0; k < in.size(); ++k) {
    const size_t axis = out.size() - 1 - k;
    const int64_t dim = in[in.size() - 1 - k];
    strides[axis] = dim == 1 ? 0 : stride;
    stride *= dim;
  }
  return strides;
}

// y[i] = f(a[ia], b[ib]) over the broadcast shape `ys`, rows of the last axis at a time.
template <typename T, typename F>
void BroadcastBinary(const T* a, const Shape& as, const T* b, const Shape& bs, T* y, const Shape& ys, F f) {
  const int64_t total = NumElements(ys);
  if (total == 0) return;
  if (as == ys && bs == ys) {
    for (int64_t i = 0; i < total; ++i) y[i] = f(a[i], b[i]);
    return;
  }
  if (ys.empty()) { y[0] = f(a[0], b[0]); return; }
  const auto sa = BroadcastStrides(as, ys), sb = BroadcastStrides(bs, ys);
  const size_t rank = ys.size();
  const int64_t inner = ys[rank - 1];
  const int64_t ia_step = sa[rank - 1], ib_step = sb[rank - 1];
  std::vector<int64_t> index(rank, 0);
  for (int64_t row = 0; row < total / inner; ++row) {
    int64_t ia = 0, ib = 0;
    for (size_t k = 0; k + 1 < rank; ++k) { ia += index[k] * sa[k]; ib += index[k] * sb[k]; }
    T* yr = y + row * inner;
    if (ia_step && ib_step) for (int64_t j = 0; j < inner; ++j) yr[j] = f(a[ia + j], b[ib + j]);
    else if (ia_step) { const T bv = b[ib]; for (int64_t j = 0; j < inner; ++j) yr[j] = f(a[ia + j], bv); }
    else if (ib_step) { const T av = a[ia]; for (int64_t j = 0; j < inner; ++j) yr[j] = f(av, b[ib + j]); }
    else { const T v = f(a[ia], b[ib]); for (int64_t j = 0; j < inner; ++j) yr[j] = v; }
    for (int64_t k = static_cast<int64_t>(rank) - 2; k >= 0; --k) {
      if (++index[k] < ys[k]) break;
      index[k] = 0;
    }
  }
}

}  // namespace facesight
