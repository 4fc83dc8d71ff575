// A minimal protobuf wire-format reader: enough to walk ONNX messages field by field. Every read
// is bounds-checked; malformed input raises E_MODEL instead of reading out of the buffer.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "common/error.h"

namespace facesight {

class ProtoReader {
 public:
  ProtoReader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  bool done() const { return p_ >= end_; }

  // Reads the next field key; returns false at the end of the message.
  bool Next(uint32_t* field, uint32_t* wire_type) {
    if (done()) return false;
    uint64_t key = Varint();
    *field = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<uint32_t>(key & 7);
    return true;
  }

  uint64_t Varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) Corrupt("truncated varint");
      uint8_t byte = *p_++;
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    Corrupt("varint longer than 10 bytes");
  }

  // A length-delimited field: returns a reader over its bytes.
  ProtoReader Bytes() {
    uint64_t n = Varint();
    if (n > static_cast<uint64_t>(end_ - p_)) Corrupt("length-delimited field runs past the end");
    ProtoReader sub(p_, static_cast<size_t>(n));
    p_ += n;
    return sub;
  }

  std::string String() {
    ProtoReader r = Bytes();
    return std::string(reinterpret_cast<const char*>(r.p_), r.end_ - r.p_);
  }

  float Fixed32Float() {
    if (end_ - p_ < 4) Corrupt("truncated fixed32");
    float v;
    std::memcpy(&v, p_, 4);
    p_ += 4;
    return v;
  }

  void Skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0: Varint(); break;
      case 1: Advance(8); break;
      case 2: Bytes(); break;
      case 5: Advance(4); break;
      default: Corrupt("unsupported wire type " + std::to_string(wire_type));
    }
  }

  const uint8_t* data() const { return p_; }
  size_t size() const { return static_cast<size_t>(end_ - p_); }

  [[noreturn]] static void Corrupt(const std::string& what) {
    Fail(ErrorCode::Model, "Malformed ONNX model: ", what, " (is the file truncated or not an ONNX model?)");
  }

 private:
  void Advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) Corrupt("truncated fixed-size field");
    p_ += n;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace facesight
