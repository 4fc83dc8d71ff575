#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>

#include "common/error.h"
#include "engine/arena_layout.h"
#include "engine/graph_passes.h"
#include "ops/kernels.h"
#include "ops/layout.h"

namespace facesight {

// One step of a plan: a kernel and the slots it reads and writes.
struct Step {
  std::string label;           // "Conv node 'x' [1, 8, 320, 320]" for FACESIGHT_PROFILE
  KernelFn kernel;
  std::vector<int> in_slots;   // -1 for absent optional inputs
  std::vector<int> out_slots;
};

struct OutputBinding {
  int slot = -1;
  Shape shape;
  bool owned = false;                   // written by a kernel into its own buffer (handed over, no copy)
  const HostTensor* constant = nullptr; // folded at plan time
};

struct Plan {
  std::deque<HostTensor> constants;          // folded values (stable addresses)
  std::vector<Step> steps;
  std::vector<float*> slot_ptrs;              // per slot: arena, constant, or filled per run
  std::vector<int64_t> slot_sizes;
  std::vector<int> slot_root;                 // a view slot reads its root slot's memory
  std::vector<int> input_slots;
  std::vector<OutputBinding> outputs;
};

namespace {

constexpr int64_t kAlignFloats = 16;  // 64-byte alignment inside the arena

int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

}  // namespace

namespace {

// Index of the first NaN / ±Inf among n floats, or −1; large inputs (a batch of frames: tens of MiB)
// are scanned by the pool's threads.
int64_t FirstNonFinite(const float* x, int64_t n, ThreadPool* pool) {
  constexpr int64_t kChunk = int64_t{1} << 18;  // 1 MiB
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) return Kernels().first_non_finite(x, n);
  std::vector<int64_t> first(chunks, -1);
  ParallelFor(pool, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t begin = c * kChunk, found = Kernels().first_non_finite(x + begin, std::min(kChunk, n - begin));
      if (found >= 0) first[c] = begin + found;
    }
  });
  for (int64_t f : first)
    if (f >= 0) return f;
  return -1;
}

}  // namespace

std::unique_ptr<Engine> Engine::Load(const uint8_t* data, size_t size, const EngineOptions& options) {
  OnnxModel model = ParseOnnx(data, size);
  FoldBatchNorm(model);
  FuseActivations(model);
  FuseSeparableConvs(model);
  return std::unique_ptr<Engine>(new Engine(std::move(model), options));
}

Engine::Engine(OnnxModel model, const EngineOptions& options)
    : model_(std::move(model)), options_(options), pool_(options.pool ? options.pool : std::make_shared<ThreadPool>(std::max(1, options.threads))) {
  for (const Node& n : model_.nodes) ops_.push_back(CreateOp(n, model_.opset));
  const char* layout = std::getenv("FACESIGHT_LAYOUT");
  if (layout && std::string(layout) == "nchw") options_.blocked_layout = false;
}

Engine::~Engine() = default;

std::vector<OutputTensor> Engine::Run(const std::vector<InputView>& inputs) {
  ThreadPool::CallerScope pinned(pool_.get());
  if (inputs.size() != model_.inputs.size())
    Fail(ErrorCode::Input, "Expected ", model_.inputs.size(), " inputs but received ", inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const ValueInfo& decl = model_.inputs[k];
    const Shape& shape = inputs[k].shape;
    if (decl.has_shape) {
      if (decl.dims.size() != shape.size())
        Fail(ErrorCode::Input, "Expected rank ", decl.dims.size(), " for input '", decl.name, "' but received dims ", ShapeToString(shape));
      for (size_t d = 0; d < shape.size(); ++d)
        if (decl.dims[d].value > 0 && decl.dims[d].value != shape[d])
          Fail(ErrorCode::Input, "Expected size ", decl.dims[d].value, " at axis ", d, " of input '", decl.name,
               "' but received dims ", ShapeToString(shape));
    }
    const int64_t bad = FirstNonFinite(inputs[k].data, NumElements(shape), pool_.get());
    if (bad >= 0)
      Fail(ErrorCode::Input, "Expected finite values for input '", decl.name, "' but received ",
           std::isnan(inputs[k].data[bad]) ? "NaN" : "Infinity", " at index ", bad);
  }

  std::lock_guard<std::mutex> lock(mutex_);
  std::shared_ptr<Plan> plan = GetPlan(inputs);
  std::vector<float*> slots = plan->slot_ptrs;
  for (size_t k = 0; k < inputs.size(); ++k)
    slots[plan->input_slots[k]] = const_cast<float*>(inputs[k].data);
  std::vector<OutputTensor> results(plan->outputs.size());
  for (size_t k = 0; k < plan->outputs.size(); ++k) {
    const OutputBinding& o = plan->outputs[k];
    results[k].shape = o.shape;
    results[k].data = MakeCachedFloats(static_cast<size_t>(NumElements(o.shape)));
    if (o.owned) slots[o.slot] = results[k].data.get();
  }
  for (size_t s = 0; s < slots.size(); ++s)  // roots come before their views
    if (plan->slot_root[s] != static_cast<int>(s)) slots[s] = slots[plan->slot_root[s]];
  std::vector<const float*> in_ptrs;
  std::vector<float*> out_ptrs;
  // FACESIGHT_PROFILE=1 prints each step's time to stderr (a developer's tool, off by default).
  static const bool profile = std::getenv("FACESIGHT_PROFILE") != nullptr;
  for (const Step& step : plan->steps) {
    in_ptrs.clear();
    out_ptrs.clear();
    for (int s : step.in_slots) in_ptrs.push_back(s >= 0 ? slots[s] : nullptr);
    for (int s : step.out_slots) out_ptrs.push_back(slots[s]);
    if (!profile) {
      step.kernel(in_ptrs.data(), out_ptrs.data(), pool_.get());
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    step.kernel(in_ptrs.data(), out_ptrs.data(), pool_.get());
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "facesight-profile %8.3f ms  %s\n", ms, step.label.c_str());
  }
  for (size_t k = 0; k < plan->outputs.size(); ++k) {
    const OutputBinding& o = plan->outputs[k];
    if (o.constant) std::copy(o.constant->f.begin(), o.constant->f.end(), results[k].data.get());
    else if (!o.owned) std::copy_n(slots[o.slot], NumElements(o.shape), results[k].data.get());
  }
  pool_->Rest();
  return results;
}

std::shared_ptr<Plan> Engine::GetPlan(const std::vector<InputView>& inputs) {
  std::vector<Shape> key;
  for (const InputView& in : inputs) key.push_back(in.shape);
  for (auto it = plans_.begin(); it != plans_.end(); ++it) {
    if (it->first == key) {
      plans_.splice(plans_.begin(), plans_, it);
      return plans_.front().second;
    }
  }
  const float* arena_before = arena_.data();
  std::shared_ptr<Plan> plan = BuildPlan(key);
  if (arena_.data() != arena_before) plans_.clear();  // the arena grew: older plans point into freed memory
  plans_.emplace_front(key, plan);
  while (static_cast<int>(plans_.size()) > std::max(1, options_.max_cached_plans)) plans_.pop_back();
  return plan;
}

std::shared_ptr<Plan> Engine::BuildPlan(const std::vector<Shape>& shapes) {
  auto plan = std::make_shared<Plan>();
  // Per value name: what is known, and which slot holds it at run time (-1: a constant).
  struct Value {
    ValueDesc desc;
    int slot = -1;
  };
  std::map<std::string, Value> values;
  std::vector<int> slot_root;        // view slots share their root's memory
  std::vector<int> first_write, last_read;
  auto new_slot = [&](int64_t size, int step) {
    int s = static_cast<int>(plan->slot_sizes.size());
    plan->slot_sizes.push_back(size);
    slot_root.push_back(s);
    first_write.push_back(step);
    last_read.push_back(step);
    return s;
  };
  for (auto& kv : model_.initializers) values[kv.first] = Value{ConstantDesc(kv.second), -1};
  for (size_t k = 0; k < model_.inputs.size(); ++k) {
    Value v;
    v.desc.shape = shapes[k];
    v.slot = new_slot(NumElements(shapes[k]), -1);
    first_write[v.slot] = -1;
    plan->input_slots.push_back(v.slot);
    values[model_.inputs[k].name] = v;
  }
  std::vector<bool> is_input_slot(plan->slot_sizes.size(), true);  // filled per run, not in the arena
  std::map<const HostTensor*, int> constant_slots;                   // float constants kernels read
  // A value converted to the other layout by a reorder step, made the first time a reader needs it.
  std::map<std::pair<std::string, bool>, Value> relaid;
  auto relayout = [&](const std::string& name, bool to_blocked) -> const Value& {
    auto found = relaid.find({name, to_blocked});
    if (found != relaid.end()) return found->second;
    const Value& src = values.at(name);
    const int step_index = static_cast<int>(plan->steps.size());
    last_read[slot_root[src.slot]] = std::max(last_read[slot_root[src.slot]], step_index);
    Value v;
    v.desc = src.desc;
    v.desc.blocked = to_blocked;
    v.slot = new_slot(NumElements(src.desc.shape), step_index);
    is_input_slot.push_back(false);
    const Shape shape = src.desc.shape;
    Step step;
    step.label = std::string(to_blocked ? "Reorder to NCHW16c '" : "Reorder to NCHW '") + name + "' " + ShapeToString(shape);
    step.in_slots = {src.slot};
    step.out_slots = {v.slot};
    step.kernel = [shape, to_blocked](const float* const* in, float* const* out, ThreadPool* pool) {
      (to_blocked ? ReorderToBlocked : ReorderFromBlocked)(in[0], out[0], shape[0], shape[1], shape[2] * shape[3], pool);
    };
    plan->steps.push_back(std::move(step));
    return relaid.emplace(std::make_pair(name, to_blocked), v).first->second;
  };

  for (size_t n = 0; n < ops_.size(); ++n) {
    const Op& op = *ops_[n];
    const Node& node = op.node();
    Inputs in;
    std::vector<int> in_slots;
    bool all_constant = true;
    for (const std::string& name : node.inputs) {
      if (name.empty()) { in.push_back(nullptr); in_slots.push_back(-1); continue; }
      auto it = values.find(name);
      if (it == values.end()) Fail(ErrorCode::Model, node.Describe(), " reads '", name, "', which is not computed");
      in.push_back(&it->second.desc);
      in_slots.push_back(it->second.slot);
      all_constant = all_constant && it->second.desc.constant;
    }
    if (!all_constant && !op.FoldsAlways()) {
      for (size_t k = 0; k < in.size(); ++k) {
        const HostTensor* c = in[k] ? in[k]->constant : nullptr;
        if (!c || c->dtype != DType::Float32) continue;
        auto found = constant_slots.find(c);
        if (found == constant_slots.end()) {
          found = constant_slots.emplace(c, new_slot(0, -1)).first;
          is_input_slot.push_back(true);
        }
        in_slots[k] = found->second;
      }
    }
    bool folded = false;
    std::vector<ValueDesc> out = InferOrFold(op, in, all_constant, &plan->constants, &folded);
    if (folded) {
      for (size_t k = 0; k < node.outputs.size(); ++k)
        if (!node.outputs[k].empty()) values[node.outputs[k]] = Value{out[k], -1};
      continue;
    }
    // Layouts: where the op runs in NCHW16c, inputs it needs blocked are reordered to it (once per
    // value), and blocked inputs it cannot read go back to NCHW.
    const LayoutUse use = options_.blocked_layout ? op.Layout(in) : LayoutUse::Nchw;
    bool any_blocked = false;
    for (const ValueDesc* v : in) any_blocked = any_blocked || (v && v->blocked);
    const bool run_blocked = use == LayoutUse::Produces || use == LayoutUse::Needs ||
                             ((use == LayoutUse::Agnostic || use == LayoutUse::ReadsEither) && any_blocked);
    for (size_t k = 0; k < in.size(); ++k) {
      if (!in[k] || in[k]->constant) continue;
      bool want = false;
      if (run_blocked && use == LayoutUse::Agnostic) want = true;
      else if (run_blocked && k == 0) want = use == LayoutUse::Needs || in[k]->blocked;
      if (in[k]->blocked == want) continue;
      const Value& v = relayout(node.inputs[k], want);
      in[k] = &v.desc;
      in_slots[k] = v.slot;
    }
    for (ValueDesc& o : out) o.blocked = run_blocked && o.dtype == DType::Float32 && CanBlock(o.shape);
    const int step_index = static_cast<int>(plan->steps.size());
    for (int s : in_slots)
      if (s >= 0) last_read[slot_root[s]] = std::max(last_read[slot_root[s]], step_index);
    if (op.IsView()) {
      Value v;
      v.desc = out[0];
      v.slot = new_slot(0, step_index);
      slot_root[v.slot] = slot_root[in_slots[0]];
      is_input_slot.push_back(false);
      values[node.outputs[0]] = v;
      continue;
    }
    Step step;
    step.label = node.Describe() + " " + (in.empty() || !in[0] ? std::string() : ShapeToString(in[0]->shape)) + " -> " + ShapeToString(out[0].shape);
    step.in_slots = in_slots;
    step.kernel = op.Build(in, out);
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      Value v;
      v.desc = out[k];
      v.slot = new_slot(NumElements(out[k].shape), step_index);
      is_input_slot.push_back(false);
      step.out_slots.push_back(v.slot);
      if (!node.outputs[k].empty()) values[node.outputs[k]] = v;
    }
    plan->steps.push_back(std::move(step));
  }

  // Graph outputs: a slot written by a kernel and read by nothing after is handed out directly.
  std::vector<bool> owned_slot(plan->slot_sizes.size(), false);
  for (const ValueInfo& o : model_.outputs) {
    auto it = values.find(o.name);
    if (it == values.end()) Fail(ErrorCode::Model, "Graph output '", o.name, "' is never computed");
    const Value& v = it->second.desc.blocked ? relayout(o.name, false) : it->second;
    if (v.desc.dtype != DType::Float32) Fail(ErrorCode::Model, "Graph output '", o.name, "' is int64; facesight returns float32 outputs");
    OutputBinding b;
    b.shape = v.desc.shape;
    if (v.desc.constant) {
      b.constant = v.desc.constant;
    } else {
      b.slot = v.slot;
      bool is_view = slot_root[v.slot] != v.slot;
      bool read_later = last_read[v.slot] > first_write[v.slot];
      b.owned = !is_view && !is_input_slot[v.slot] && !read_later && !owned_slot[v.slot];
      if (b.owned) owned_slot[v.slot] = true;
      else last_read[slot_root[v.slot]] = static_cast<int>(plan->steps.size());  // copied out at the end
    }
    plan->outputs.push_back(b);
  }

  // Lay out the arena: greedy by size, reusing space between values whose lifetimes do not overlap.
  plan->slot_ptrs.resize(plan->slot_sizes.size(), nullptr);
  std::vector<int> order;
  std::vector<ArenaValue> arena_values;
  for (size_t s = 0; s < plan->slot_sizes.size(); ++s)
    if (slot_root[s] == static_cast<int>(s) && !is_input_slot[s] && !owned_slot[s] && plan->slot_sizes[s] > 0) {
      order.push_back(static_cast<int>(s));
      arena_values.push_back({RoundUp(plan->slot_sizes[s], kAlignFloats), first_write[s], last_read[s]});
    }
  std::vector<int64_t> offsets;
  const int64_t arena_size = LayOutArena(arena_values, &offsets);
  // Every plan of this engine lays its values out in the one arena: runs hold the engine's lock, so
  // no two plans are in use at once, and a new input shape (a pipeline's varying face count) touches
  // no fresh pages. Growing it moves it: GetPlan then drops the plans that pointed into the old one.
  const size_t needed = static_cast<size_t>(arena_size + kAlignFloats);
  if (arena_.size() < needed) arena_ = std::vector<float>(needed, 0.f);
  float* base = arena_.data();
  base += (kAlignFloats - (reinterpret_cast<uintptr_t>(base) / sizeof(float)) % kAlignFloats) % kAlignFloats;
  for (size_t k = 0; k < order.size(); ++k) plan->slot_ptrs[order[k]] = base + offsets[k];
  for (auto& kv : constant_slots) plan->slot_ptrs[kv.second] = const_cast<float*>(kv.first->f.data());
  // Resolve chains of views to their final root once, so a run needs one pass.
  for (size_t s = 0; s < slot_root.size(); ++s) slot_root[s] = slot_root[slot_root[s]];
  plan->slot_root = slot_root;
  return plan;
}

}  // namespace facesight
