// One error type for the whole core. The addon maps `code` onto the JS FaceError's code.
#pragma once
#include <stdexcept>
#include <string>
#include <sstream>

namespace facesight {

enum class ErrorCode { Input, Model, Device, State, Internal };

inline const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::Input: return "E_INPUT";
    case ErrorCode::Model: return "E_MODEL";
    case ErrorCode::Device: return "E_DEVICE";
    case ErrorCode::State: return "E_STATE";
    default: return "E_INTERNAL";
  }
}

class FaceException : public std::runtime_error {
 public:
  FaceException(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
 private:
  ErrorCode code_;
};

// Builds a message from any streamable pieces: Fail(ErrorCode::Model, "node ", name, ": bad axis").
template <typename... Parts>
[[noreturn]] void Fail(ErrorCode code, const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw FaceException(code, out.str());
}

}  // namespace facesight
