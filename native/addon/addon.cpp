// The N-API surface: module init (per-environment instance data, so it works in worker_threads),
// the NativeModel wrapper, and the async workers. Thin by design: lib/ validates, the core computes.
#include <napi.h>

#include <memory>

#include "addon/errors.h"
#include "common/devices.h"
#include "engine/engine.h"
#include "pipeline/detector.h"

namespace facesight {
namespace {

// The NativeModel / NativeDetector constructors of this environment (kept by the Addon instance).
Napi::Function ModelConstructor(Napi::Env env);
Napi::Function DetectorConstructor(Napi::Env env);

// ---- NativeModel: owns an Engine; shared with in-flight runs so dispose() never frees under them.
class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("run", &NativeModel::Run), InstanceMethod("dispose", &NativeModel::Dispose),
                        InstanceAccessor("inputs", &NativeModel::Inputs, nullptr),
                        InstanceAccessor("outputs", &NativeModel::Outputs, nullptr),
                        InstanceAccessor("threads", &NativeModel::Threads, nullptr)});
  }

  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    // Only created from LoadWorker::OnOK with the engine in an External.
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "NativeModel is created by loadModel()").ThrowAsJavaScriptException();
      return;
    }
    auto* holder = info[0].As<Napi::External<std::shared_ptr<Engine>>>().Data();
    engine_ = *holder;
  }

 private:
  std::shared_ptr<Engine> Live(Napi::Env env) {
    if (!engine_) ThrowFaceError(env, ErrorCode::State, "The model has been disposed");
    return engine_;
  }

  static Napi::Value Describe(Napi::Env env, const std::vector<ValueInfo>& values) {
    Napi::Array list = Napi::Array::New(env, values.size());
    for (size_t k = 0; k < values.size(); ++k) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", values[k].name);
      Napi::Array dims = Napi::Array::New(env, values[k].dims.size());
      for (size_t d = 0; d < values[k].dims.size(); ++d) {
        const Dim& dim = values[k].dims[d];
        if (dim.value > 0) dims.Set(d, Napi::Number::New(env, static_cast<double>(dim.value)));
        else dims.Set(d, Napi::String::New(env, dim.symbol.empty() ? "?" : dim.symbol));
      }
      o.Set("dims", dims);
      o.Set("hasShape", values[k].has_shape);
      list.Set(k, o);
    }
    return list;
  }

  Napi::Value Inputs(const Napi::CallbackInfo& info) {
    auto e = Live(info.Env());
    return e ? Describe(info.Env(), e->inputs()) : info.Env().Undefined();
  }
  Napi::Value Outputs(const Napi::CallbackInfo& info) {
    auto e = Live(info.Env());
    return e ? Describe(info.Env(), e->outputs()) : info.Env().Undefined();
  }
  Napi::Value Threads(const Napi::CallbackInfo& info) {
    auto e = Live(info.Env());
    return e ? Napi::Number::New(info.Env(), e->threads()) : info.Env().Undefined();
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    engine_.reset();
    return info.Env().Undefined();
  }
  Napi::Value Run(const Napi::CallbackInfo& info);

  std::shared_ptr<Engine> engine_;
};

// ---- load: parse + plan-independent setup off the event loop.
class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, Napi::Uint8Array bytes, int threads)
      : PromiseWorker(env), bytes_(Napi::Persistent(bytes)), data_(bytes.Data()), size_(bytes.ByteLength()), threads_(threads) {}

 protected:
  void Compute() override {
    EngineOptions options;
    options.threads = threads_;
    engine_ = std::shared_ptr<Engine>(Engine::Load(data_, size_, options));
  }
  Napi::Value Result(Napi::Env env) override {
    bytes_.Reset();
    std::shared_ptr<Engine> holder = engine_;
    auto external = Napi::External<std::shared_ptr<Engine>>::New(env, &holder);
    return ModelConstructor(env).New({external});
  }

 private:
  Napi::Reference<Napi::Uint8Array> bytes_;  // keeps the buffer alive while Compute reads it
  const uint8_t* data_;
  size_t size_;
  int threads_;
  std::shared_ptr<Engine> engine_;
};

// ---- run: inputs read in place (references keep them alive); outputs become external buffers.
class RunWorker : public PromiseWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<Engine> engine) : PromiseWorker(env), engine_(std::move(engine)) {}

  void AddInput(Napi::Float32Array data, Shape shape) {
    refs_.push_back(Napi::Persistent(data.As<Napi::Object>()));
    inputs_.push_back(InputView{data.Data(), std::move(shape)});
  }

 protected:
  void Compute() override { outputs_ = engine_->Run(inputs_); }
  Napi::Value Result(Napi::Env env) override {
    refs_.clear();
    Napi::Array list = Napi::Array::New(env, outputs_.size());
    for (size_t k = 0; k < outputs_.size(); ++k) {
      const size_t count = static_cast<size_t>(outputs_[k].size());
      const size_t capacity = outputs_[k].data.get_deleter().count;
      float* values = outputs_[k].data.release();  // now owned by the ArrayBuffer's finalizer
      // Tell V8 how much memory it holds, so garbage collection returns buffers to the cache in time.
      const int64_t bytes = static_cast<int64_t>(capacity * sizeof(float));
      Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
      Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
          env, values, count * sizeof(float),
          [](Napi::Env finalize_env, void* p, size_t* capacity_hint) {
            Napi::MemoryManagement::AdjustExternalMemory(finalize_env, -static_cast<int64_t>(*capacity_hint * sizeof(float)));
            ReleaseFloats(static_cast<float*>(p), *capacity_hint);
            delete capacity_hint;
          },
          new size_t(capacity));
      Napi::Object o = Napi::Object::New(env);
      o.Set("data", Napi::Float32Array::New(env, count, buffer, 0));
      Napi::Array dims = Napi::Array::New(env, outputs_[k].shape.size());
      for (size_t d = 0; d < outputs_[k].shape.size(); ++d) dims.Set(d, static_cast<double>(outputs_[k].shape[d]));
      o.Set("dims", dims);
      list.Set(k, o);
    }
    return list;
  }

 private:
  std::shared_ptr<Engine> engine_;
  std::vector<Napi::ObjectReference> refs_;
  std::vector<InputView> inputs_;
  std::vector<OutputTensor> outputs_;
};

// run([{data: Float32Array, dims: number[]}, ...]) in the order of `inputs`. lib/ has validated it.
Napi::Value NativeModel::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Live(env);
  if (!engine) return env.Undefined();
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "run expects an array of inputs").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[0].As<Napi::Array>();
  auto* worker = new RunWorker(env, engine);
  for (uint32_t k = 0; k < list.Length(); ++k) {
    Napi::Object item = list.Get(k).As<Napi::Object>();
    Napi::Value data = item.Get("data");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      delete worker;
      Napi::TypeError::New(env, "input data must be a Float32Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Array dims = item.Get("dims").As<Napi::Array>();
    Shape shape;
    for (uint32_t d = 0; d < dims.Length(); ++d) shape.push_back(static_cast<int64_t>(dims.Get(d).As<Napi::Number>().Int64Value()));
    worker->AddInput(data.As<Napi::Float32Array>(), std::move(shape));
  }
  return worker->Start();
}


// ---- NativeDetector: a detector network plus its pre- and post-processing (pipeline/detector.h).
class NativeDetector : public Napi::ObjectWrap<NativeDetector> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeDetector",
                       {InstanceMethod("detect", &NativeDetector::Detect), InstanceMethod("dispose", &NativeDetector::Dispose)});
  }
  explicit NativeDetector(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeDetector>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "NativeDetector is created by createDetector()").ThrowAsJavaScriptException();
      return;
    }
    detector_ = *info[0].As<Napi::External<std::shared_ptr<Detector>>>().Data();
  }

 private:
  Napi::Value Detect(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    detector_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<Detector> detector_;
};

// createDetector: loads the network and builds the detector off the event loop.
class CreateDetectorWorker : public PromiseWorker {
 public:
  CreateDetectorWorker(Napi::Env env, Napi::Uint8Array bytes, DetectorConfig config, int threads)
      : PromiseWorker(env), bytes_(Napi::Persistent(bytes)), data_(bytes.Data()), size_(bytes.ByteLength()),
        config_(std::move(config)), threads_(threads) {}

 protected:
  void Compute() override {
    EngineOptions options;
    options.threads = threads_;
    std::shared_ptr<Engine> engine(Engine::Load(data_, size_, options));
    detector_ = std::make_shared<Detector>(engine, config_);
  }
  Napi::Value Result(Napi::Env env) override {
    bytes_.Reset();
    auto external = Napi::External<std::shared_ptr<Detector>>::New(env, &detector_);
    return DetectorConstructor(env).New({external});
  }

 private:
  Napi::Reference<Napi::Uint8Array> bytes_;
  const uint8_t* data_;
  size_t size_;
  DetectorConfig config_;
  int threads_;
  std::shared_ptr<Detector> detector_;
};

class DetectWorker : public PromiseWorker {
 public:
  DetectWorker(Napi::Env env, std::shared_ptr<Detector> detector) : PromiseWorker(env), detector_(std::move(detector)) {}
  void AddFrame(Napi::Uint8Array data, int32_t width, int32_t height, int32_t channels) {
    refs_.push_back(Napi::Persistent(data.As<Napi::Object>()));
    ImageU8 frame;
    frame.data = data.Data();
    frame.width = width;
    frame.height = height;
    frame.channels = channels;
    frame.row_stride = static_cast<int64_t>(width) * channels;
    frames_.push_back(frame);
  }

 protected:
  void Compute() override { faces_ = detector_->Detect(frames_); }
  Napi::Value Result(Napi::Env env) override {
    refs_.clear();
    Napi::Array all = Napi::Array::New(env, faces_.size());
    for (size_t i = 0; i < faces_.size(); ++i) {
      Napi::Array list = Napi::Array::New(env, faces_[i].size());
      for (size_t k = 0; k < faces_[i].size(); ++k) {
        const DetectedFace& f = faces_[i][k];
        Napi::Object o = Napi::Object::New(env);
        Napi::Array box = Napi::Array::New(env, 4);
        for (uint32_t j = 0; j < 4; ++j) box.Set(j, f.box[j]);
        Napi::Array landmarks = Napi::Array::New(env, f.has_landmarks ? 10 : 0);
        if (f.has_landmarks)
          for (uint32_t j = 0; j < 10; ++j) landmarks.Set(j, f.landmarks[j]);
        o.Set("box", box);
        o.Set("score", f.score);
        o.Set("landmarks", landmarks);
        list.Set(k, o);
      }
      all.Set(i, list);
    }
    return all;
  }

 private:
  std::shared_ptr<Detector> detector_;
  std::vector<Napi::ObjectReference> refs_;
  std::vector<ImageU8> frames_;
  std::vector<std::vector<DetectedFace>> faces_;
};

// detect([{data: Uint8Array, width, height, channels}, ...]); lib/ has validated every frame.
Napi::Value NativeDetector::Detect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!detector_) {
    ThrowFaceError(env, ErrorCode::State, "The face engine has been disposed");
    return env.Undefined();
  }
  Napi::Array list = info[0].As<Napi::Array>();
  auto* worker = new DetectWorker(env, detector_);
  for (uint32_t k = 0; k < list.Length(); ++k) {
    Napi::Object frame = list.Get(k).As<Napi::Object>();
    worker->AddFrame(frame.Get("data").As<Napi::Uint8Array>(), frame.Get("width").As<Napi::Number>().Int32Value(),
                     frame.Get("height").As<Napi::Number>().Int32Value(), frame.Get("channels").As<Napi::Number>().Int32Value());
  }
  return worker->Start();
}

// The config object lib/pipeline builds from a model descriptor and the user's options (validated there).
DetectorConfig ReadDetectorConfig(Napi::Object c) {
  auto number = [&](const char* key) { return c.Get(key).As<Napi::Number>().DoubleValue(); };
  auto floats = [&](const char* key, float* out, uint32_t n) {
    Napi::Array a = c.Get(key).As<Napi::Array>();
    for (uint32_t k = 0; k < n && k < a.Length(); ++k) out[k] = static_cast<float>(a.Get(k).As<Napi::Number>().DoubleValue());
  };
  DetectorConfig config;
  config.input_width = static_cast<int32_t>(number("inputWidth"));
  config.input_height = static_cast<int32_t>(number("inputHeight"));
  const std::string resize = c.Get("resizeMode").As<Napi::String>().Utf8Value();
  config.resize = resize == "stretch" ? ResizeMode::Stretch : resize == "pad-square" ? ResizeMode::PadSquare : ResizeMode::Letterbox;
  floats("padValue", config.pad_rgb, 3);
  config.decoder = c.Get("decoder").As<Napi::String>().Utf8Value() == "ssd" ? DecoderKind::Ssd : DecoderKind::RetinaFace;
  config.nms_plus_one = c.Get("nmsPlusOne").As<Napi::Boolean>().Value();
  if (config.decoder == DecoderKind::Ssd) {
    Napi::Float32Array anchors = c.Get("anchors").As<Napi::Float32Array>();
    config.anchors.assign(anchors.Data(), anchors.Data() + anchors.ElementLength());
    Napi::Object ssd = c.Get("ssd").As<Napi::Object>();
    auto ssd_number = [&](const char* key) { return static_cast<float>(ssd.Get(key).As<Napi::Number>().DoubleValue()); };
    config.ssd.scale_x = config.ssd.scale_y = ssd_number("scaleXY");
    config.ssd.scale_w = config.ssd.scale_h = ssd_number("scaleWH");
    config.ssd.yx_order = ssd.Get("yxOrder").As<Napi::Boolean>().Value();
    config.ssd.score_stride = static_cast<int32_t>(ssd_number("scoreStride"));
    config.ssd.score_index = static_cast<int32_t>(ssd_number("scoreIndex"));
    config.ssd.score_sigmoid = ssd.Get("scoreSigmoid").As<Napi::Boolean>().Value();
    config.ssd.clip = false;  // face-api clips after NMS (the detector does)
  }
  config.norm.order = c.Get("colorOrder").As<Napi::String>().Utf8Value() == "BGR" ? ColorOrder::Bgr : ColorOrder::Rgb;
  floats("mean", config.norm.mean, 3);
  floats("std", config.norm.std, 3);
  Napi::Array steps = c.Get("steps").As<Napi::Array>();
  Napi::Array sizes = c.Get("minSizes").As<Napi::Array>();
  config.priors.num_levels = static_cast<int32_t>(std::min<uint32_t>(steps.Length(), kMaxPriorLevels));
  for (int32_t l = 0; l < config.priors.num_levels; ++l) {
    PriorLevel& level = config.priors.levels[l];
    level.step = steps.Get(l).As<Napi::Number>().Int32Value();
    Napi::Array s = sizes.Get(l).As<Napi::Array>();
    level.num_sizes = static_cast<int32_t>(std::min<uint32_t>(s.Length(), kMaxPriorSizes));
    for (int32_t k = 0; k < level.num_sizes; ++k) level.min_sizes[k] = static_cast<float>(s.Get(k).As<Napi::Number>().DoubleValue());
  }
  config.priors.clip = c.Get("clip").As<Napi::Boolean>().Value();
  float variances[2] = {0.1f, 0.2f};
  floats("variances", variances, 2);
  config.variance_center = variances[0];
  config.variance_size = variances[1];
  config.score_threshold = static_cast<float>(number("scoreThreshold"));
  config.nms_threshold = static_cast<float>(number("nmsThreshold"));
  config.max_faces = static_cast<int32_t>(number("maxFaces"));
  config.min_face_size = static_cast<float>(number("minFaceSize"));
  config.boxes_output = c.Get("boxesOutput").As<Napi::String>().Utf8Value();
  config.scores_output = c.Get("scoresOutput").As<Napi::String>().Utf8Value();
  config.landmarks_output = c.Get("landmarksOutput").As<Napi::String>().Utf8Value();
  return config;
}

}  // namespace

// ---- module
class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    model_ctor_ = Napi::Persistent(NativeModel::Define(env));
    detector_ctor_ = Napi::Persistent(NativeDetector::Define(env));
    DefineAddon(exports, {InstanceMethod("loadModel", &Addon::LoadModel), InstanceMethod("devices", &Addon::Devices),
                          InstanceMethod("createDetector", &Addon::CreateDetector)});
  }

 private:
  Napi::Value LoadModel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) {
      Napi::TypeError::New(env, "loadModel(bytes: Uint8Array, threads: number)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return (new LoadWorker(env, info[0].As<Napi::Uint8Array>(), info[1].As<Napi::Number>().Int32Value()))->Start();
  }

  // createDetector(bytes: Uint8Array, config: object, threads: number)
  Napi::Value CreateDetector(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsObject() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "createDetector(bytes: Uint8Array, config: object, threads: number)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return (new CreateDetectorWorker(env, info[0].As<Napi::Uint8Array>(), ReadDetectorConfig(info[1].As<Napi::Object>()),
                                     info[2].As<Napi::Number>().Int32Value()))->Start();
  }

  Napi::Value Devices(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto devices = ListDevices();
    Napi::Array list = Napi::Array::New(env, devices.size());
    for (size_t k = 0; k < devices.size(); ++k) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", devices[k].name);
      o.Set("available", devices[k].available);
      o.Set("detail", devices[k].detail);
      list.Set(k, o);
    }
    return list;
  }

  Napi::FunctionReference model_ctor_;
  Napi::FunctionReference detector_ctor_;

 public:
  Napi::Function model_constructor() const { return model_ctor_.Value(); }
  Napi::Function detector_constructor() const { return detector_ctor_.Value(); }
};

namespace {
// Napi::Addon stores the Addon as the environment's instance data, so each worker thread has its own.
Napi::Function ModelConstructor(Napi::Env env) { return env.GetInstanceData<Addon>()->model_constructor(); }
Napi::Function DetectorConstructor(Napi::Env env) { return env.GetInstanceData<Addon>()->detector_constructor(); }
}  // namespace

}  // namespace facesight

using FacesightAddon = facesight::Addon;
NODE_API_ADDON(FacesightAddon)
