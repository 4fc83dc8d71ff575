// The interface every network op implements. An Op is made once per node at load time (validating
// attributes); for each new set of input shapes the planner asks it to infer output shapes and to
// build a kernel bound to those shapes. Ops whose inputs are all known at plan time are folded.
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/tensor.h"
#include "common/thread_pool.h"
#include "engine/onnx_model.h"

namespace facesight {

// What the planner knows about a value: type, shape, and its contents when constant.
struct ValueDesc {
  DType dtype = DType::Float32;
  Shape shape;
  const HostTensor* constant = nullptr;
  // Memory in NCHW16c (ops/layout.h) instead of NCHW; the shape stays the logical NCHW one.
  bool blocked = false;
};

// How an op can take values in NCHW16c, decided per plan from its inputs (the planner inserts
// reorders where layouts meet; see Engine::BuildPlan).
enum class LayoutUse {
  Nchw,        // every input in NCHW (the default)
  Agnostic,    // elementwise over same-shaped inputs: runs on either layout if all its data inputs share it
  ReadsEither, // input 0 in either layout (the kernel checks), output in the same one
  Produces,    // input 0 in either layout, output always NCHW16c (dense convs)
  Needs,       // input 0 in NCHW16c, output NCHW16c (depthwise convs)
};

// What the planner knows of an initializer or a folded value.
inline ValueDesc ConstantDesc(const HostTensor& t) { return ValueDesc{t.dtype, t.shape, &t}; }

using Inputs = std::vector<const ValueDesc*>;  // nullptr where an optional input is absent

// Runs on concrete pointers: in[i] is null for absent optional inputs.
using KernelFn = std::function<void(const float* const* in, float* const* out, ThreadPool* pool)>;

class Op {
 public:
  explicit Op(const Node& node) : node_(node) {}
  virtual ~Op() = default;

  virtual std::vector<ValueDesc> Infer(const Inputs& in) const = 0;
  virtual KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const = 0;
  // Computes the outputs at plan time from constant inputs. The default runs the float kernel on
  // host buffers; ops that handle int64 (shape arithmetic) override it.
  virtual std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const;
  // Shape: its output depends only on input shapes, so it is always folded.
  virtual bool FoldsAlways() const { return false; }
  // Reshape-like ops: the output is input 0's memory under another shape (no kernel runs).
  virtual bool IsView() const { return false; }
  // Which layouts the op's kernel takes for these inputs; Build then reads in[k]->blocked / out[k].blocked.
  virtual LayoutUse Layout(const Inputs& in) const { (void)in; return LayoutUse::Nchw; }

  const Node& node() const { return node_; }

 protected:
  // Input k, which must be present.
  const ValueDesc& Required(const Inputs& in, size_t k) const;
  // Input k, which must be known at plan time (a shape, axes, scales...).
  const HostTensor& ConstantInput(const Inputs& in, size_t k, const char* what) const;
  template <typename... Parts>
  [[noreturn]] void ModelError(const Parts&... parts) const { Fail(ErrorCode::Model, node_.Describe(), ": ", parts...); }

  Node node_;
};

using OpFactory = std::unique_ptr<Op> (*)(const Node& node, int64_t opset);

// Creates the op for a node; throws E_MODEL naming the op and the node when unsupported.
std::unique_ptr<Op> CreateOp(const Node& node, int64_t opset);
std::vector<std::string> SupportedOps();

// The plan-time step every planner (CPU, CUDA) takes per node: infers the outputs and, when the node
// folds (every input constant, or an op that always folds), computes them into `constants` (stable
// addresses) and returns them as constant descs with *folded = true. A node left to run may not read
// int64 values computed at run time (E_MODEL).
std::vector<ValueDesc> InferOrFold(const Op& op, const Inputs& in, bool all_constant, std::deque<HostTensor>* constants,
                                   bool* folded);

// Normalises a possibly negative axis against a rank; throws for out-of-range axes.
int64_t NormalizeAxis(const Op& op, int64_t axis, int64_t rank);

}  // namespace facesight
