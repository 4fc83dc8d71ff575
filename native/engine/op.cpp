#include "engine/op.h"

namespace facesight {

const ValueDesc& Op::Required(const Inputs& in, size_t k) const {
  if (k >= in.size() || !in[k]) ModelError("input ", k, " is required");
  return *in[k];
}

const HostTensor& Op::ConstantInput(const Inputs& in, size_t k, const char* what) const {
  const ValueDesc& v = Required(in, k);
  if (!v.constant)
    ModelError(what, " (input ", k, ") must be known when the model is planned, but it is computed from runtime data");
  return *v.constant;
}

std::vector<HostTensor> Op::Fold(const Inputs& in, const std::vector<ValueDesc>& out) const {
  std::vector<const float*> in_ptrs;
  for (const ValueDesc* v : in) {
    if (v && v->dtype != DType::Float32) ModelError("int64 inputs are only supported for shape arithmetic");
    in_ptrs.push_back(v ? v->constant->f.data() : nullptr);
  }
  std::vector<HostTensor> results;
  std::vector<float*> out_ptrs;
  for (const ValueDesc& o : out) results.push_back(HostTensor::Float(o.shape, std::vector<float>(NumElements(o.shape))));
  for (HostTensor& r : results) out_ptrs.push_back(r.f.data());
  Build(in, out)(in_ptrs.data(), out_ptrs.data(), nullptr);
  return results;
}

int64_t NormalizeAxis(const Op& op, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) Fail(ErrorCode::Model, op.node().Describe(), ": axis ", axis, " is out of range for rank ", rank);
  return a;
}

}  // namespace facesight
