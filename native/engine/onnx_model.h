// The engine's model IR, read from ONNX: nodes in topological order, constant tensors, and the
// graph's inputs and outputs with their declared (possibly symbolic) dims.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/tensor.h"

namespace facesight {

struct Attribute {
  enum class Kind { Float, Int, String, Tensor, Floats, Ints, Strings, Graph } kind = Kind::Int;
  float f = 0.f;
  int64_t i = 0;
  std::string s;
  HostTensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
};

struct Node {
  std::string name, op_type, domain;
  std::vector<std::string> inputs, outputs;  // "" = optional input left out
  std::map<std::string, Attribute> attrs;

  bool Has(const std::string& key) const { return attrs.count(key) > 0; }
  int64_t Int(const std::string& key, int64_t fallback) const;
  float Float(const std::string& key, float fallback) const;
  std::string Str(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> Ints(const std::string& key, std::vector<int64_t> fallback = {}) const;
  // "Conv 'name'" for messages.
  std::string Describe() const;
};

// A declared dim: a size, or a symbol (dim_param) / unknown (-1 with an empty symbol).
struct Dim {
  int64_t value = -1;
  std::string symbol;
};

struct ValueInfo {
  std::string name;
  int32_t elem_type = 1;  // ONNX TensorProto.DataType
  std::vector<Dim> dims;
  bool has_shape = false;
};

struct OnnxModel {
  int64_t ir_version = 0;
  int64_t opset = 0;            // default-domain opset
  std::string producer;
  std::vector<Node> nodes;
  std::map<std::string, HostTensor> initializers;
  std::vector<ValueInfo> inputs;   // graph inputs that are not initializers
  std::vector<ValueInfo> outputs;
};

// Parses an ONNX ModelProto. Throws FaceException(E_MODEL) on malformed bytes, external data,
// unsupported tensor types, or graphs that are not topologically sorted.
OnnxModel ParseOnnx(const uint8_t* data, size_t size);

}  // namespace facesight
