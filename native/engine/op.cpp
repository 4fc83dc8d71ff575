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

std::vector<ValueDesc> InferOrFold(const Op& op, const Inputs& in, bool all_constant, std::deque<HostTensor>* constants,
                                   bool* folded) {
  const Node& node = op.node();
  std::vector<ValueDesc> out = op.Infer(in);
  if (out.size() < node.outputs.size()) Fail(ErrorCode::Internal, node.Describe(), " inferred too few outputs");
  *folded = all_constant || op.FoldsAlways();
  if (*folded) {
    std::vector<HostTensor> values = op.Fold(in, out);
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      if (node.outputs[k].empty()) continue;
      constants->push_back(std::move(values[k]));
      out[k] = ConstantDesc(constants->back());
    }
    return out;
  }
  for (const ValueDesc* v : in)
    if (v && v->dtype != DType::Float32 && !v->constant)
      Fail(ErrorCode::Model, node.Describe(), ": int64 values computed from runtime data are not supported");
  return out;
}

int64_t NormalizeAxis(const Op& op, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) Fail(ErrorCode::Model, op.node().Describe(), ": axis ", axis, " is out of range for rank ", rank);
  return a;
}

}  // namespace facesight
