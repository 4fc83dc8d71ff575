// Shapes and host tensors. Runtime float tensors live in a plan's arena; this type is for constants,
// plan-time values (shape arithmetic) and results handed back to the caller.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace facesight {

using Shape = std::vector<int64_t>;

inline int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape);

enum class DType { Float32, Int64 };

inline const char* DTypeName(DType t) { return t == DType::Float32 ? "float32" : "int64"; }

// A dense host tensor that owns its storage (float or int64; one of the two vectors is used).
struct HostTensor {
  DType dtype = DType::Float32;
  Shape shape;
  std::vector<float> f;
  std::vector<int64_t> i;

  static HostTensor Float(Shape shape, std::vector<float> values) {
    HostTensor t; t.dtype = DType::Float32; t.shape = std::move(shape); t.f = std::move(values); return t;
  }
  static HostTensor Int(Shape shape, std::vector<int64_t> values) {
    HostTensor t; t.dtype = DType::Int64; t.shape = std::move(shape); t.i = std::move(values); return t;
  }
  int64_t size() const { return NumElements(shape); }
  // Integer view of either dtype (shape arithmetic sometimes arrives as float constants).
  int64_t IntAt(int64_t k) const { return dtype == DType::Int64 ? i[k] : static_cast<int64_t>(f[k]); }
  double DoubleAt(int64_t k) const { return dtype == DType::Int64 ? static_cast<double>(i[k]) : f[k]; }
};

}  // namespace facesight
