#include "common/tensor.h"

namespace facesight {

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) {
    if (k) s += ", ";
    s += std::to_string(shape[k]);
  }
  return s + "]";
}

}  // namespace facesight
