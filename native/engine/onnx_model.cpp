#include "engine/onnx_model.h"

#include <cmath>
#include <cstring>
#include <set>
#include <unordered_map>

#include "common/error.h"
#include "engine/graph_passes.h"
#include "engine/protobuf_reader.h"

namespace facesight {

int64_t Node::Int(const std::string& key, int64_t fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.i;
}
float Node::Float(const std::string& key, float fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  return it->second.kind == Attribute::Kind::Int ? static_cast<float>(it->second.i) : it->second.f;
}
std::string Node::Str(const std::string& key, const std::string& fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.s;
}
std::vector<int64_t> Node::Ints(const std::string& key, std::vector<int64_t> fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.ints;
}
std::string Node::Describe() const {
  return op_type + " node '" + (name.empty() ? (outputs.empty() ? std::string("?") : outputs[0]) : name) + "'";
}

namespace {

float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float value;
  if (exp == 0) value = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) value = mant ? NAN : INFINITY;
  else value = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits |= sign;
  std::memcpy(&value, &bits, 4);
  return value;
}

// Reads repeated scalar fields written either packed (wire type 2) or one by one.
template <typename F>
void ReadRepeated(ProtoReader& r, uint32_t wire, F read_one) {
  if (wire == 2) {
    ProtoReader packed = r.Bytes();
    while (!packed.done()) read_one(packed);
  } else {
    read_one(r);
  }
}

HostTensor ParseTensor(ProtoReader r, std::string* name_out) {
  Shape dims;
  int32_t data_type = 0;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  const uint8_t* raw = nullptr;
  size_t raw_size = 0;
  bool external = false;
  std::string name;
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    switch (field) {
      case 1: ReadRepeated(r, wire, [&](ProtoReader& s) { dims.push_back(static_cast<int64_t>(s.Varint())); }); break;
      case 2: data_type = static_cast<int32_t>(r.Varint()); break;
      case 4: ReadRepeated(r, wire, [&](ProtoReader& s) { floats.push_back(s.Fixed32Float()); }); break;
      case 5: case 7: ReadRepeated(r, wire, [&](ProtoReader& s) { ints.push_back(static_cast<int64_t>(s.Varint())); }); break;
      case 8: name = r.String(); break;
      case 9: { ProtoReader b = r.Bytes(); raw = b.data(); raw_size = b.size(); break; }
      case 10: ReadRepeated(r, wire, [&](ProtoReader& s) {
                 if (s.size() < 8) ProtoReader::Corrupt("truncated double");
                 double d; std::memcpy(&d, s.data(), 8); doubles.push_back(d); s.Skip(1); });
               break;
      case 14: external = r.Varint() == 1; break;
      default: r.Skip(wire);
    }
  }
  if (name_out) *name_out = name;
  if (external) Fail(ErrorCode::Model, "Tensor '", name, "' stores its data externally; save the model with all tensors inside the .onnx file");
  for (int64_t d : dims)
    if (d < 0) Fail(ErrorCode::Model, "Tensor '", name, "' has a negative dim");
  const int64_t n = NumElements(dims);
  auto check_count = [&](size_t have) {
    if (static_cast<int64_t>(have) != n)
      Fail(ErrorCode::Model, "Tensor '", name, "' has ", have, " values for shape ", ShapeToString(dims));
  };
  HostTensor t;
  t.shape = dims;
  auto raw_as = [&](size_t elem) {
    if (raw_size != static_cast<size_t>(n) * elem)
      Fail(ErrorCode::Model, "Tensor '", name, "' has ", raw_size, " bytes of raw data for shape ", ShapeToString(dims));
  };
  switch (data_type) {
    case 1:  // FLOAT
      t.dtype = DType::Float32;
      if (raw) { raw_as(4); t.f.resize(n); if (n) std::memcpy(t.f.data(), raw, raw_size); }
      else { check_count(floats.size()); t.f = std::move(floats); }
      break;
    case 10:  // FLOAT16
      t.dtype = DType::Float32;
      t.f.resize(n);
      if (raw) { raw_as(2); for (int64_t k = 0; k < n; ++k) { uint16_t h; std::memcpy(&h, raw + 2 * k, 2); t.f[k] = HalfToFloat(h); } }
      else { check_count(ints.size()); for (int64_t k = 0; k < n; ++k) t.f[k] = HalfToFloat(static_cast<uint16_t>(ints[k])); }
      break;
    case 11:  // DOUBLE
      t.dtype = DType::Float32;
      t.f.resize(n);
      if (raw) { raw_as(8); for (int64_t k = 0; k < n; ++k) { double d; std::memcpy(&d, raw + 8 * k, 8); t.f[k] = static_cast<float>(d); } }
      else { check_count(doubles.size()); for (int64_t k = 0; k < n; ++k) t.f[k] = static_cast<float>(doubles[k]); }
      break;
    case 7: case 6: case 2: case 3: case 4: case 5: case 9: case 12: case 13: {  // integer types and bool
      t.dtype = DType::Int64;
      t.i.resize(n);
      if (raw) {
        size_t elem = data_type == 7 || data_type == 13 ? 8 : data_type == 6 || data_type == 12 ? 4
                    : data_type == 4 || data_type == 5 ? 2 : 1;
        raw_as(elem);
        for (int64_t k = 0; k < n; ++k) {
          const uint8_t* p = raw + elem * k;
          int64_t v = 0;
          switch (data_type) {
            case 7: case 13: std::memcpy(&v, p, 8); break;
            case 6: { int32_t x; std::memcpy(&x, p, 4); v = x; break; }
            case 12: { uint32_t x; std::memcpy(&x, p, 4); v = x; break; }
            case 5: { int16_t x; std::memcpy(&x, p, 2); v = x; break; }
            case 4: { uint16_t x; std::memcpy(&x, p, 2); v = x; break; }
            case 3: v = static_cast<int8_t>(*p); break;
            default: v = *p;
          }
          t.i[k] = v;
        }
      } else {
        check_count(ints.size());
        for (int64_t k = 0; k < n; ++k)
          t.i[k] = data_type == 6 ? static_cast<int32_t>(ints[k]) : ints[k];
      }
      break;
    }
    default:
      Fail(ErrorCode::Model, "Tensor '", name, "' has ONNX data type ", data_type, ", which facesight does not support");
  }
  return t;
}

Attribute ParseAttribute(ProtoReader r, std::string* name) {
  Attribute a;
  int32_t type = 0;
  bool saw_f = false, saw_i = false, saw_s = false, saw_t = false;
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    switch (field) {
      case 1: *name = r.String(); break;
      case 2: a.f = r.Fixed32Float(); saw_f = true; break;
      case 3: a.i = static_cast<int64_t>(r.Varint()); saw_i = true; break;
      case 4: a.s = r.String(); saw_s = true; break;
      case 5: a.t = ParseTensor(r.Bytes(), nullptr); saw_t = true; break;
      case 7: ReadRepeated(r, wire, [&](ProtoReader& s) { a.floats.push_back(s.Fixed32Float()); }); break;
      case 8: ReadRepeated(r, wire, [&](ProtoReader& s) { a.ints.push_back(static_cast<int64_t>(s.Varint())); }); break;
      case 20: type = static_cast<int32_t>(r.Varint()); break;
      default: r.Skip(wire);
    }
  }
  switch (type) {
    case 1: a.kind = Attribute::Kind::Float; break;
    case 2: a.kind = Attribute::Kind::Int; break;
    case 3: a.kind = Attribute::Kind::String; break;
    case 4: a.kind = Attribute::Kind::Tensor; break;
    case 5: a.kind = Attribute::Kind::Graph; break;
    case 6: a.kind = Attribute::Kind::Floats; break;
    case 7: a.kind = Attribute::Kind::Ints; break;
    case 8: a.kind = Attribute::Kind::Strings; break;
    default:  // very old exporters omit the type: infer it from the field present
      a.kind = saw_t ? Attribute::Kind::Tensor : saw_s ? Attribute::Kind::String : saw_f ? Attribute::Kind::Float
             : saw_i ? Attribute::Kind::Int : !a.floats.empty() ? Attribute::Kind::Floats : Attribute::Kind::Ints;
  }
  return a;
}

Node ParseNode(ProtoReader r) {
  Node n;
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    switch (field) {
      case 1: n.inputs.push_back(r.String()); break;
      case 2: n.outputs.push_back(r.String()); break;
      case 3: n.name = r.String(); break;
      case 4: n.op_type = r.String(); break;
      case 5: { std::string key; Attribute a = ParseAttribute(r.Bytes(), &key); n.attrs[key] = std::move(a); break; }
      case 7: n.domain = r.String(); break;
      default: r.Skip(wire);
    }
  }
  if (n.op_type.empty()) ProtoReader::Corrupt("a node without op_type");
  // That domain names nodes the engine's own graph passes make; a file may not contain them.
  if (n.domain == kInternalDomain)
    Fail(ErrorCode::Model, "Unsupported op ", n.domain, ".", n.op_type, " in node '", n.name, "' (a reserved domain)");
  return n;
}

ValueInfo ParseValueInfo(ProtoReader r) {
  ValueInfo v;
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    if (field == 1) { v.name = r.String(); continue; }
    if (field != 2) { r.Skip(wire); continue; }
    ProtoReader type = r.Bytes();
    while (type.Next(&field, &wire)) {
      if (field != 1) { type.Skip(wire); continue; }
      ProtoReader tensor = type.Bytes();
      while (tensor.Next(&field, &wire)) {
        if (field == 1) { v.elem_type = static_cast<int32_t>(tensor.Varint()); continue; }
        if (field != 2) { tensor.Skip(wire); continue; }
        v.has_shape = true;
        ProtoReader shape = tensor.Bytes();
        while (shape.Next(&field, &wire)) {
          if (field != 1) { shape.Skip(wire); continue; }
          ProtoReader dim = shape.Bytes();
          Dim d;
          while (dim.Next(&field, &wire)) {
            if (field == 1) d.value = static_cast<int64_t>(dim.Varint());
            else if (field == 2) d.symbol = dim.String();
            else dim.Skip(wire);
          }
          v.dims.push_back(d);
        }
      }
    }
  }
  return v;
}

// Orders nodes so each runs after the producers of its inputs (exporters usually do; be sure).
void SortTopologically(OnnxModel& m) {
  std::set<std::string> available;
  for (auto& kv : m.initializers) available.insert(kv.first);
  for (auto& in : m.inputs) available.insert(in.name);
  available.insert("");
  std::vector<Node> sorted;
  std::vector<bool> placed(m.nodes.size(), false);
  sorted.reserve(m.nodes.size());
  bool progress = true;
  while (sorted.size() < m.nodes.size() && progress) {
    progress = false;
    for (size_t k = 0; k < m.nodes.size(); ++k) {
      if (placed[k]) continue;
      bool ready = true;
      for (auto& in : m.nodes[k].inputs) ready = ready && available.count(in);
      if (!ready) continue;
      for (auto& out : m.nodes[k].outputs) available.insert(out);
      sorted.push_back(std::move(m.nodes[k]));
      placed[k] = true;
      progress = true;
    }
  }
  if (sorted.size() < m.nodes.size()) {
    for (size_t k = 0; k < m.nodes.size(); ++k)
      if (!placed[k])
        for (auto& in : m.nodes[k].inputs)
          if (!available.count(in))
            Fail(ErrorCode::Model, m.nodes[k].Describe(), " reads '", in, "', which no node, input or initializer provides");
  }
  m.nodes = std::move(sorted);
}

}  // namespace

OnnxModel ParseOnnx(const uint8_t* data, size_t size) {
  if (size == 0) Fail(ErrorCode::Model, "Malformed ONNX model: the buffer is empty");
  OnnxModel m;
  ProtoReader r(data, size);
  uint32_t field, wire;
  bool saw_graph = false;
  std::vector<ValueInfo> declared_inputs;
  while (r.Next(&field, &wire)) {
    switch (field) {
      case 1: m.ir_version = static_cast<int64_t>(r.Varint()); break;
      case 2: m.producer = r.String(); break;
      case 7: {
        saw_graph = true;
        ProtoReader g = r.Bytes();
        while (g.Next(&field, &wire)) {
          switch (field) {
            case 1: m.nodes.push_back(ParseNode(g.Bytes())); break;
            case 5: { std::string name; HostTensor t = ParseTensor(g.Bytes(), &name); m.initializers[name] = std::move(t); break; }
            case 11: declared_inputs.push_back(ParseValueInfo(g.Bytes())); break;
            case 12: m.outputs.push_back(ParseValueInfo(g.Bytes())); break;
            default: g.Skip(wire);
          }
        }
        break;
      }
      case 8: {
        ProtoReader op = r.Bytes();
        std::string domain;
        int64_t version = 0;
        while (op.Next(&field, &wire)) {
          if (field == 1) domain = op.String();
          else if (field == 2) version = static_cast<int64_t>(op.Varint());
          else op.Skip(wire);
        }
        if (domain.empty() || domain == "ai.onnx") m.opset = version;
        break;
      }
      default: r.Skip(wire);
    }
  }
  if (!saw_graph || m.ir_version == 0)
    Fail(ErrorCode::Model, "Malformed ONNX model: no graph or IR version found (is this an ONNX file?)");
  if (m.opset == 0) m.opset = 1;
  // Older exporters list initializers among the inputs too; those are constants, not inputs.
  for (auto& in : declared_inputs)
    if (!m.initializers.count(in.name)) m.inputs.push_back(std::move(in));
  if (m.outputs.empty()) Fail(ErrorCode::Model, "The ONNX graph declares no outputs");
  for (auto& in : m.inputs)
    if (in.elem_type != 1)
      Fail(ErrorCode::Model, "Input '", in.name, "' has ONNX element type ", in.elem_type, "; facesight models take float32 inputs");
  SortTopologically(m);
  return m;
}

}  // namespace facesight
