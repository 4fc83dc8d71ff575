// The N-API surface: module init (per-environment instance data, so it works in worker_threads),
// the NativeModel wrapper, and the async workers. Thin by design: lib/ validates, the core computes.
#include <napi.h>

#include <memory>

#include "addon/errors.h"
#include "common/devices.h"
#include "engine/engine.h"
#include "engine/network.h"
#include "pipeline/face_pipeline.h"
#if defined(FACESIGHT_WITH_CUDA)
#include "pipeline/cuda_face_pipeline.h"
#endif
#include "vision/distance.h"

namespace facesight {
namespace {

// The NativeModel / NativePipeline constructors of this environment (kept by the Addon instance).
Napi::Function ModelConstructor(Napi::Env env);
Napi::Function PipelineConstructor(Napi::Env env);

// ---- NativeModel: owns a Network (CPU Engine or CudaEngine); shared with in-flight runs so dispose()
// never frees under them.
class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("run", &NativeModel::Run), InstanceMethod("dispose", &NativeModel::Dispose),
                        InstanceAccessor("inputs", &NativeModel::Inputs, nullptr),
                        InstanceAccessor("outputs", &NativeModel::Outputs, nullptr),
                        InstanceAccessor("threads", &NativeModel::Threads, nullptr),
                        InstanceAccessor("device", &NativeModel::Device, nullptr),
                        InstanceAccessor("precision", &NativeModel::Precision, nullptr)});
  }

  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    // Only created from LoadWorker::OnOK with the engine in an External.
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "NativeModel is created by loadModel()").ThrowAsJavaScriptException();
      return;
    }
    auto* holder = info[0].As<Napi::External<std::shared_ptr<Network>>>().Data();
    engine_ = *holder;
  }

 private:
  std::shared_ptr<Network> Live(Napi::Env env) {
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
  Napi::Value Device(const Napi::CallbackInfo& info) {
    auto e = Live(info.Env());
    return e ? Napi::String::New(info.Env(), e->device()) : info.Env().Undefined();
  }
  Napi::Value Precision(const Napi::CallbackInfo& info) {
    auto e = Live(info.Env());
    return e ? Napi::String::New(info.Env(), e->precision()) : info.Env().Undefined();
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    engine_.reset();
    return info.Env().Undefined();
  }
  Napi::Value Run(const Napi::CallbackInfo& info);

  std::shared_ptr<Network> engine_;
};

// ---- load: parse + plan-independent setup off the event loop.
class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, Napi::Uint8Array bytes, NetworkOptions options)
      : PromiseWorker(env), bytes_(Napi::Persistent(bytes)), data_(bytes.Data()), size_(bytes.ByteLength()), options_(std::move(options)) {}

 protected:
  void Compute() override { engine_ = std::shared_ptr<Network>(LoadNetwork(data_, size_, options_)); }
  Napi::Value Result(Napi::Env env) override {
    bytes_.Reset();
    std::shared_ptr<Network> holder = engine_;
    auto external = Napi::External<std::shared_ptr<Network>>::New(env, &holder);
    return ModelConstructor(env).New({external});
  }

 private:
  Napi::Reference<Napi::Uint8Array> bytes_;  // keeps the buffer alive while Compute reads it
  const uint8_t* data_;
  size_t size_;
  NetworkOptions options_;
  std::shared_ptr<Network> engine_;
};

// ---- run: inputs read in place (references keep them alive); outputs become external buffers.
class RunWorker : public PromiseWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<Network> engine) : PromiseWorker(env), engine_(std::move(engine)) {}

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
  std::shared_ptr<Network> engine_;
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


// ---- NativePipeline: detector + optional landmark and embedding stages (pipeline/face_pipeline.h).
class NativePipeline : public Napi::ObjectWrap<NativePipeline> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativePipeline",
                       {InstanceMethod("run", &NativePipeline::Run), InstanceMethod("dispose", &NativePipeline::Dispose),
                        InstanceAccessor("embeddingSize", &NativePipeline::EmbeddingSize, nullptr)});
  }
  explicit NativePipeline(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativePipeline>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "NativePipeline is created by createPipeline()").ThrowAsJavaScriptException();
      return;
    }
    pipeline_ = *info[0].As<Napi::External<std::shared_ptr<RecognitionPipeline>>>().Data();
  }

 private:
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    pipeline_.reset();
    return info.Env().Undefined();
  }
  Napi::Value EmbeddingSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), pipeline_ ? pipeline_->embedding_size() : 0);
  }
  std::shared_ptr<RecognitionPipeline> pipeline_;
};

// One stage's network: its bytes stay referenced until the worker has parsed them.
struct StageBytes {
  Napi::Reference<Napi::Uint8Array> ref;
  const uint8_t* data = nullptr;
  size_t size = 0;
  void Hold(Napi::Uint8Array bytes) {
    ref = Napi::Persistent(bytes);
    data = bytes.Data();
    size = bytes.ByteLength();
  }
};

// createPipeline: loads the networks and builds the pipeline off the event loop.
class CreatePipelineWorker : public PromiseWorker {
 public:
  CreatePipelineWorker(Napi::Env env, int threads, std::string device, std::string precision)
      : PromiseWorker(env), threads_(threads), device_(std::move(device)), precision_(std::move(precision)) {}
  StageBytes detector_bytes, landmarker_bytes, embedder_bytes;
  DetectorConfig detector_config;
  LandmarkerConfig landmarker_config;
  EmbedderConfig embedder_config;

 protected:
  void Compute() override {
    if (device_ == "cuda") return CreateOnCuda();
    EngineOptions options;
    options.threads = threads_;
    options.pool = std::make_shared<ThreadPool>(std::max(1, threads_));
    auto load = [&](const StageBytes& b) {
      return b.data ? std::shared_ptr<Engine>(Engine::Load(b.data, b.size, options)) : nullptr;
    };
    auto detector = std::make_shared<Detector>(load(detector_bytes), detector_config);
    pipeline_ = std::make_shared<FacePipeline>(detector, load(landmarker_bytes), landmarker_config, load(embedder_bytes),
                                               embedder_config, options.pool);
  }
  Napi::Value Result(Napi::Env env) override {
    detector_bytes.ref.Reset();
    landmarker_bytes.ref.Reset();
    embedder_bytes.ref.Reset();
    auto external = Napi::External<std::shared_ptr<RecognitionPipeline>>::New(env, &pipeline_);
    return PipelineConstructor(env).New({external});
  }

 private:
  // Every stage on the GPU (CudaFacePipeline names the stages that are CPU-only: E_MODEL).
  void CreateOnCuda() {
#if defined(FACESIGHT_WITH_CUDA)
    CudaEngineOptions options;
    options.precision = precision_ == "fp16" ? CudaPrecision::kFp16 : CudaPrecision::kFp32;
    auto load = [&](const StageBytes& b) {
      return b.data ? std::shared_ptr<CudaEngine>(CudaEngine::Load(b.data, b.size, options)) : nullptr;
    };
    pipeline_ = std::make_shared<CudaFacePipeline>(load(detector_bytes), detector_config, load(landmarker_bytes),
                                                   landmarker_config, load(embedder_bytes), embedder_config);
#else
    Fail(ErrorCode::Device, "This build of facesight has no CUDA kernels (nvcc was not found when it was built)");
#endif
  }

  int threads_;
  std::string device_, precision_;
  std::shared_ptr<RecognitionPipeline> pipeline_;
};

Napi::Array FloatArray(Napi::Env env, const float* values, size_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t j = 0; j < n; ++j) a.Set(static_cast<uint32_t>(j), values[j]);
  return a;
}

class RunPipelineWorker : public PromiseWorker {
 public:
  RunPipelineWorker(Napi::Env env, std::shared_ptr<RecognitionPipeline> pipeline, bool embed)
      : PromiseWorker(env), pipeline_(std::move(pipeline)), embed_(embed) {}
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
  void Compute() override { faces_ = pipeline_->Run(frames_, embed_); }
  Napi::Value Result(Napi::Env env) override {
    refs_.clear();
    Napi::Array all = Napi::Array::New(env, faces_.size());
    for (size_t i = 0; i < faces_.size(); ++i) {
      Napi::Array list = Napi::Array::New(env, faces_[i].size());
      for (size_t k = 0; k < faces_[i].size(); ++k) {
        const PipelineFace& p = faces_[i][k];
        const DetectedFace& f = p.face;
        Napi::Object o = Napi::Object::New(env);
        o.Set("box", FloatArray(env, f.box, 4));
        o.Set("score", f.score);
        o.Set("landmarks", FloatArray(env, f.landmarks, f.has_landmarks ? 10 : 0));
        o.Set("landmarks68", FloatArray(env, p.landmarks68.data(), p.landmarks68.size()));
        if (!p.embedding.empty()) {
          Napi::Float32Array e = Napi::Float32Array::New(env, p.embedding.size());
          std::copy(p.embedding.begin(), p.embedding.end(), e.Data());
          o.Set("embedding", e);
        }
        list.Set(k, o);
      }
      all.Set(i, list);
    }
    return all;
  }

 private:
  std::shared_ptr<RecognitionPipeline> pipeline_;
  bool embed_;
  std::vector<Napi::ObjectReference> refs_;
  std::vector<ImageU8> frames_;
  std::vector<std::vector<PipelineFace>> faces_;
};

// run([{data: Uint8Array, width, height, channels}, ...], embed); lib/ has validated every frame.
Napi::Value NativePipeline::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!pipeline_) {
    ThrowFaceError(env, ErrorCode::State, "The face engine has been disposed");
    return env.Undefined();
  }
  Napi::Array list = info[0].As<Napi::Array>();
  auto* worker = new RunPipelineWorker(env, pipeline_, info[1].ToBoolean().Value());
  for (uint32_t k = 0; k < list.Length(); ++k) {
    Napi::Object frame = list.Get(k).As<Napi::Object>();
    worker->AddFrame(frame.Get("data").As<Napi::Uint8Array>(), frame.Get("width").As<Napi::Number>().Int32Value(),
                     frame.Get("height").As<Napi::Number>().Int32Value(), frame.Get("channels").As<Napi::Number>().Int32Value());
  }
  return worker->Start();
}

// A crop stage's network input {inputWidth, inputHeight, colorOrder, mean, std, padValue} as the
// warp that cuts it (NCHW).
WarpParams ReadCropInput(Napi::Object c) {
  WarpParams crop;
  crop.out_width = c.Get("inputWidth").As<Napi::Number>().Int32Value();
  crop.out_height = c.Get("inputHeight").As<Napi::Number>().Int32Value();
  crop.norm.order = c.Get("colorOrder").As<Napi::String>().Utf8Value() == "BGR" ? ColorOrder::Bgr : ColorOrder::Rgb;
  crop.norm.layout = TensorLayout::Nchw;
  Napi::Array mean = c.Get("mean").As<Napi::Array>(), std = c.Get("std").As<Napi::Array>(), pad = c.Get("padValue").As<Napi::Array>();
  for (uint32_t k = 0; k < 3; ++k) {
    crop.norm.mean[k] = static_cast<float>(mean.Get(k).As<Napi::Number>().DoubleValue());
    crop.norm.std[k] = static_cast<float>(std.Get(k).As<Napi::Number>().DoubleValue());
    crop.border_rgb[k] = static_cast<float>(pad.Get(k).As<Napi::Number>().DoubleValue());
  }
  return crop;
}

// {inputWidth, inputHeight, colorOrder, mean, std, padValue, output, uprightDegrees, anyRotation}
LandmarkerConfig ReadLandmarkerConfig(Napi::Object c) {
  LandmarkerConfig config;
  config.crop = ReadCropInput(c);
  config.output = c.Get("output").As<Napi::String>().Utf8Value();
  config.upright_degrees = static_cast<float>(c.Get("uprightDegrees").As<Napi::Number>().DoubleValue());
  config.any_rotation = c.Get("anyRotation").ToBoolean().Value();
  return config;
}

// {inputWidth, inputHeight, colorOrder, mean, std, padValue, output, alignment, template, uses68, firstPoint, flip}
EmbedderConfig ReadEmbedderConfig(Napi::Object c) {
  EmbedderConfig config;
  config.crop = ReadCropInput(c);
  config.output = c.Get("output").As<Napi::String>().Utf8Value();
  const std::string alignment = c.Get("alignment").As<Napi::String>().Utf8Value();
  config.alignment = alignment == "similarity" ? AlignmentKind::Similarity
                     : alignment == "eye-line" ? AlignmentKind::EyeLine
                                               : AlignmentKind::None;
  Napi::Array points = c.Get("template").As<Napi::Array>();
  for (uint32_t k = 0; k < points.Length(); ++k)
    config.template_xy.push_back(static_cast<float>(points.Get(k).As<Napi::Number>().DoubleValue()));
  config.uses_68 = c.Get("uses68").As<Napi::Boolean>().Value();
  config.first_point = c.Get("firstPoint").As<Napi::Number>().Int32Value();
  config.flip = c.Get("flip").ToBoolean().Value();
  return config;
}

// distances(queries, gallery, dim, topK, all): Euclidean distances of each query to every gallery row,
// off the event loop (lib/ has checked the lengths). The arrays stay referenced while it runs.
class DistancesWorker : public PromiseWorker {
 public:
  DistancesWorker(Napi::Env env, Napi::Float32Array queries, Napi::Float32Array gallery, int64_t dim, int32_t top_k, bool all)
      : PromiseWorker(env), queries_ref_(Napi::Persistent(queries)), gallery_ref_(Napi::Persistent(gallery)),
        queries_(queries.Data()), gallery_(gallery.Data()), all_(all) {
    params_.dim = dim;
    params_.queries = dim > 0 ? static_cast<int64_t>(queries.ElementLength()) / dim : 0;
    params_.gallery = dim > 0 ? static_cast<int64_t>(gallery.ElementLength()) / dim : 0;
    params_.metric = DistanceMetric::Euclidean;
    params_.top_k = top_k;
  }

 protected:
  void Compute() override {
    const int64_t q = params_.queries, g = params_.gallery, k = params_.top_k;
    if (all_) distances_.resize(q * g);
    top_index_.resize(q * k);
    top_value_.resize(q * k);
    std::vector<uint8_t> workspace(DistanceWorkspaceSize(params_));
    Distances(params_, queries_, gallery_, all_ ? distances_.data() : nullptr, k ? top_index_.data() : nullptr,
              k ? top_value_.data() : nullptr, workspace.data(), nullptr);
  }
  Napi::Value Result(Napi::Env env) override {
    queries_ref_.Reset();
    gallery_ref_.Reset();
    Napi::Object o = Napi::Object::New(env);
    auto floats = [&](const std::vector<float>& v) {
      Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
      std::copy(v.begin(), v.end(), a.Data());
      return a;
    };
    if (all_) o.Set("distances", floats(distances_));
    Napi::Int32Array index = Napi::Int32Array::New(env, top_index_.size());
    std::copy(top_index_.begin(), top_index_.end(), index.Data());
    o.Set("topIndex", index);
    o.Set("topValue", floats(top_value_));
    return o;
  }

 private:
  Napi::Reference<Napi::Float32Array> queries_ref_, gallery_ref_;
  const float* queries_;
  const float* gallery_;
  bool all_;
  DistanceParams params_;
  std::vector<float> distances_, top_value_;
  std::vector<int32_t> top_index_;
};

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
  config.pre_nms_top_k = static_cast<int32_t>(number("preNmsTopK"));
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
    pipeline_ctor_ = Napi::Persistent(NativePipeline::Define(env));
    DefineAddon(exports, {InstanceMethod("loadModel", &Addon::LoadModel), InstanceMethod("devices", &Addon::Devices),
                          InstanceMethod("createPipeline", &Addon::CreatePipeline),
                          InstanceMethod("distances", &Addon::Distances)});
  }

 private:
  Napi::Value LoadModel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsString()) {
      Napi::TypeError::New(env, "loadModel(bytes: Uint8Array, threads: number, device: string, precision: string)")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    NetworkOptions options;
    options.threads = info[1].As<Napi::Number>().Int32Value();
    options.device = info[2].As<Napi::String>().Utf8Value();
    options.precision = info[3].As<Napi::String>().Utf8Value();
    return (new LoadWorker(env, info[0].As<Napi::Uint8Array>(), std::move(options)))->Start();
  }

  // createPipeline(detector: {bytes, config}, landmarks: {bytes, config} | null, embedder: {bytes, config} | null,
  //                threads, device: 'cpu' | 'cuda', precision: 'fp32' | 'fp16')
  Napi::Value CreatePipeline(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto stage = [](const Napi::Value& v) { return v.IsObject() && v.As<Napi::Object>().Get("bytes").IsTypedArray(); };
    if (info.Length() < 6 || !stage(info[0]) || !(info[1].IsNull() || stage(info[1])) || !(info[2].IsNull() || stage(info[2])) ||
        !info[3].IsNumber() || !info[4].IsString() || !info[5].IsString()) {
      Napi::TypeError::New(env, "createPipeline(detector, landmarks | null, embedder | null, threads, device, precision)")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto* worker = new CreatePipelineWorker(env, info[3].As<Napi::Number>().Int32Value(), info[4].As<Napi::String>().Utf8Value(),
                                            info[5].As<Napi::String>().Utf8Value());
    Napi::Object detector = info[0].As<Napi::Object>();
    worker->detector_bytes.Hold(detector.Get("bytes").As<Napi::Uint8Array>());
    worker->detector_config = ReadDetectorConfig(detector.Get("config").As<Napi::Object>());
    if (info[1].IsObject()) {
      Napi::Object landmarks = info[1].As<Napi::Object>();
      worker->landmarker_bytes.Hold(landmarks.Get("bytes").As<Napi::Uint8Array>());
      worker->landmarker_config = ReadLandmarkerConfig(landmarks.Get("config").As<Napi::Object>());
    }
    if (info[2].IsObject()) {
      Napi::Object embedder = info[2].As<Napi::Object>();
      worker->embedder_bytes.Hold(embedder.Get("bytes").As<Napi::Uint8Array>());
      worker->embedder_config = ReadEmbedderConfig(embedder.Get("config").As<Napi::Object>());
    }
    return worker->Start();
  }

  // distances(queries: Float32Array, gallery: Float32Array, dim: number, topK: number, all: boolean)
  Napi::Value Distances(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsNumber() || !info[3].IsNumber() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      Napi::TypeError::New(env, "distances(queries: Float32Array, gallery: Float32Array, dim, topK, all)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return (new DistancesWorker(env, info[0].As<Napi::Float32Array>(), info[1].As<Napi::Float32Array>(),
                                info[2].As<Napi::Number>().Int64Value(), info[3].As<Napi::Number>().Int32Value(),
                                info[4].ToBoolean().Value()))->Start();
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
  Napi::FunctionReference pipeline_ctor_;

 public:
  Napi::Function model_constructor() const { return model_ctor_.Value(); }
  Napi::Function pipeline_constructor() const { return pipeline_ctor_.Value(); }
};

namespace {
// Napi::Addon stores the Addon as the environment's instance data, so each worker thread has its own.
Napi::Function ModelConstructor(Napi::Env env) { return env.GetInstanceData<Addon>()->model_constructor(); }
Napi::Function PipelineConstructor(Napi::Env env) { return env.GetInstanceData<Addon>()->pipeline_constructor(); }
}  // namespace

}  // namespace facesight

using FacesightAddon = facesight::Addon;
NODE_API_ADDON(FacesightAddon)
