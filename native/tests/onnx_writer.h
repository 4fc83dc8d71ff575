// Writes small ONNX models from C++, so the core's tests (and the GPU machine, which has no Node.js)
// can build graphs without the TypeScript writer. Only the fields the engine reads.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace facesight_test {

class Proto {
 public:
  Proto& Varint(uint32_t field, uint64_t v) { Key(field, 0); PutVarint(v); return *this; }
  Proto& Float(uint32_t field, float v) { Key(field, 5); Put(&v, 4); return *this; }
  Proto& Bytes(uint32_t field, const void* data, size_t n) { Key(field, 2); PutVarint(n); Put(data, n); return *this; }
  Proto& Str(uint32_t field, const std::string& s) { return Bytes(field, s.data(), s.size()); }
  Proto& Msg(uint32_t field, const Proto& m) { return Bytes(field, m.buf.data(), m.buf.size()); }
  std::vector<uint8_t> buf;

 private:
  void Key(uint32_t field, uint32_t wire) { PutVarint((field << 3) | wire); }
  void PutVarint(uint64_t v) { while (v >= 0x80) { buf.push_back(static_cast<uint8_t>(v | 0x80)); v >>= 7; } buf.push_back(static_cast<uint8_t>(v)); }
  void Put(const void* p, size_t n) { auto* b = static_cast<const uint8_t*>(p); buf.insert(buf.end(), b, b + n); }
};

struct Attr {
  std::string name;
  enum Kind { Int, Float, Ints, Floats, String, Tensor } kind;
  int64_t i = 0;
  float f = 0;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::string s;
  static Attr I(std::string n, int64_t v) { Attr a; a.name = std::move(n); a.kind = Int; a.i = v; return a; }
  static Attr F(std::string n, float v) { Attr a; a.name = std::move(n); a.kind = Float; a.f = v; return a; }
  static Attr Is(std::string n, std::vector<int64_t> v) { Attr a; a.name = std::move(n); a.kind = Ints; a.ints = std::move(v); return a; }
  static Attr S(std::string n, std::string v) { Attr a; a.name = std::move(n); a.kind = String; a.s = std::move(v); return a; }
  // An int64 tensor of `dims` (a Constant node's value); the values ride in `ints`.
  static Attr T(std::string n, std::vector<int64_t> dims, std::vector<int64_t> v) {
    Attr a; a.name = std::move(n); a.kind = Tensor; a.dims = std::move(dims); a.ints = std::move(v); return a;
  }
  std::vector<int64_t> dims;
};

class OnnxWriter {
 public:
  // dims: a positive size, or -1 for a symbolic one.
  void Input(const std::string& name, const std::vector<int64_t>& dims) { graph_.Msg(11, ValueInfo(name, dims)); }
  void Output(const std::string& name) { graph_.Msg(12, ValueInfo(name, {})); }
  void Initializer(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
    Proto t;
    for (int64_t d : dims) t.Varint(1, static_cast<uint64_t>(d));
    t.Varint(2, 1).Str(8, name).Bytes(9, values.data(), values.size() * 4);
    graph_.Msg(5, t);
  }
  void IntInitializer(const std::string& name, const std::vector<int64_t>& dims, const std::vector<int64_t>& values) {
    Proto t;
    for (int64_t d : dims) t.Varint(1, static_cast<uint64_t>(d));
    t.Varint(2, 7).Str(8, name).Bytes(9, values.data(), values.size() * 8);
    graph_.Msg(5, t);
  }
  void Node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
            const std::vector<Attr>& attrs = {}) {
    Proto n;
    for (auto& i : inputs) n.Str(1, i);
    for (auto& o : outputs) n.Str(2, o);
    n.Str(3, outputs.empty() ? op : outputs[0] + "_node").Str(4, op);
    for (const Attr& a : attrs) {
      Proto p;
      p.Str(1, a.name);
      switch (a.kind) {
        case Attr::Int: p.Varint(3, static_cast<uint64_t>(a.i)).Varint(20, 2); break;
        case Attr::Float: p.Float(2, a.f).Varint(20, 1); break;
        case Attr::Ints: for (int64_t v : a.ints) p.Varint(8, static_cast<uint64_t>(v)); p.Varint(20, 7); break;
        case Attr::Floats: for (float v : a.floats) p.Float(7, v); p.Varint(20, 6); break;
        case Attr::String: p.Str(4, a.s).Varint(20, 3); break;
        case Attr::Tensor: {
          Proto t;
          for (int64_t d : a.dims) t.Varint(1, static_cast<uint64_t>(d));
          t.Varint(2, 7).Bytes(9, a.ints.data(), a.ints.size() * 8);
          p.Msg(5, t).Varint(20, 4);
          break;
        }
      }
      n.Msg(5, p);
    }
    graph_.Msg(1, n);
  }
  std::vector<uint8_t> Bytes(int64_t opset = 13) const {
    Proto model, op;
    op.Str(1, "").Varint(2, static_cast<uint64_t>(opset));
    Proto graph = graph_;
    graph.Str(2, "test");
    model.Varint(1, 8).Str(2, "facesight-test").Msg(7, graph).Msg(8, op);
    return model.buf;
  }

 private:
  static Proto ValueInfo(const std::string& name, const std::vector<int64_t>& dims) {
    Proto shape;
    for (int64_t d : dims) {
      Proto dim;
      if (d > 0) dim.Varint(1, static_cast<uint64_t>(d));
      else dim.Str(2, "n");
      shape.Msg(1, dim);
    }
    Proto tensor_type;
    tensor_type.Varint(1, 1);
    if (!dims.empty()) tensor_type.Msg(2, shape);
    Proto type;
    type.Msg(1, tensor_type);
    Proto v;
    v.Str(1, name).Msg(2, type);
    return v;
  }
  Proto graph_;
};

}  // namespace facesight_test
