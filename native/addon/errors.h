// Error mapping and the promise-returning worker base: Compute() runs on a libuv thread and may throw
// anything; a FaceException keeps its code, any other exception becomes E_INTERNAL. Rejections carry
// `code` so lib/ can rebuild a FaceError with the caller's stack.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

#include "common/error.h"

namespace facesight {

inline Napi::Error MakeFaceError(Napi::Env env, ErrorCode code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", ErrorCodeName(code));
  return error;
}

inline void ThrowFaceError(Napi::Env env, ErrorCode code, const std::string& message) {
  MakeFaceError(env, code, message).ThrowAsJavaScriptException();
}

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env, "facesight"), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Start() {
    Queue();
    return deferred_.Promise();
  }

 protected:
  virtual void Compute() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

 private:
  void Execute() override {
    try {
      Compute();
    } catch (const FaceException& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = ErrorCode::Internal;
      SetError("Out of memory");
    } catch (const std::exception& e) {
      code_ = ErrorCode::Internal;
      SetError(e.what());
    } catch (...) {
      code_ = ErrorCode::Internal;
      SetError("Unknown native error");
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    deferred_.Reject(MakeFaceError(env, code_, e.Message()).Value());
  }

  Napi::Promise::Deferred deferred_;
  ErrorCode code_ = ErrorCode::Internal;
};

}  // namespace facesight
