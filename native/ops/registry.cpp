// The op table: each family's factory returns null for op types it does not own.
#include <algorithm>

#include "engine/graph_passes.h"
#include "engine/op.h"

namespace facesight {

std::unique_ptr<Op> MakeConv(const Node&, int64_t);
std::unique_ptr<Op> MakeElementwise(const Node&, int64_t);
std::unique_ptr<Op> MakeShapeOp(const Node&, int64_t);
std::unique_ptr<Op> MakePool(const Node&, int64_t);
std::unique_ptr<Op> MakeResize(const Node&, int64_t);
std::unique_ptr<Op> MakeSoftmaxReduce(const Node&, int64_t);
std::unique_ptr<Op> MakePad(const Node&, int64_t);
std::unique_ptr<Op> MakeMatMul(const Node&, int64_t);

std::vector<std::string> SupportedOps() {
  return {"Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat", "Constant",
          "ConstantOfShape", "Conv", "Div", "Dropout", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "Gemm",
          "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log",
          "LogSoftmax", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "PRelu", "Pad", "Pow", "Reciprocal",
          "ReduceL2", "ReduceMax", "ReduceMean", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize",
          "Shape", "Sigmoid", "Slice", "Softmax", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
          "Upsample"};
}

std::unique_ptr<Op> CreateOp(const Node& node, int64_t opset) {
  const bool internal = node.domain == kInternalDomain;  // made by a graph pass, never read from a file
  if (!node.domain.empty() && node.domain != "ai.onnx" && !internal)
    Fail(ErrorCode::Model, "Unsupported op ", node.domain, ".", node.op_type, " in node '", node.name, "'");
  using Factory = std::unique_ptr<Op> (*)(const Node&, int64_t);
  static const Factory factories[] = {MakeConv, MakeElementwise, MakeShapeOp, MakePool,
                                      MakeResize, MakeSoftmaxReduce, MakePad, MakeMatMul};
  const auto supported = SupportedOps();
  if (internal || std::find(supported.begin(), supported.end(), node.op_type) != supported.end())
    for (Factory f : factories)
      if (auto op = f(node, opset)) return op;
  Fail(ErrorCode::Model, "Unsupported op ", node.op_type, " in ", node.Describe(),
       ": facesight runs the ops face models use (see the README for the list)");
}

}  // namespace facesight
