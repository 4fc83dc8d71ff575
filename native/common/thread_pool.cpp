#include "common/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FACESIGHT_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FACESIGHT_PAUSE() asm volatile("yield")
#else
#define FACESIGHT_PAUSE() std::this_thread::yield()
#endif

namespace facesight {

namespace {
// Idle workers spin, then yield the core, then sleep. Spinning keeps back-to-back steps cheap;
// yielding matters when other processes compete for the cores (a spinning thread would otherwise
// hold a core that the thread it waits for needs).
constexpr int kSpinIterations = 4000;   // pause instructions (tens of microseconds)
constexpr int kYieldIterations = 200;   // then sched_yield calls before blocking
}

namespace {

// The CPUs to pin a pool of `threads` to: every CPU this process may use, when there are exactly
// that many (a pool over fewer leaves the choice to the scheduler, so that pools can share cores).
std::vector<int> CpusToPin(int threads) {
  std::vector<int> cpus;
#if defined(__linux__)
  const char* env = std::getenv("FACESIGHT_PIN_THREADS");
  if (threads < 2 || (env && std::string(env) == "0")) return cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (static_cast<int>(cpus.size()) != threads) cpus.clear();
#else
  (void)threads;
#endif
  return cpus;
}

#if defined(__linux__)
void PinThisThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort: a refusal only costs speed
}
#endif

thread_local int caller_scopes = 0;

}  // namespace

ThreadPool::ThreadPool(int threads)
    : cpus_(CpusToPin(threads)), ranges_(new std::atomic<uint64_t>[std::max(1, threads)]()) {
  for (int k = 1; k < std::max(1, threads); ++k) workers_.emplace_back([this, k] { WorkerLoop(k - 1); });
}

ThreadPool::CallerScope::CallerScope(const ThreadPool* pool) {
#if defined(__linux__)
  if (!pool || pool->cpus_.empty()) return;
  counted_ = true;
  if (caller_scopes++ > 0) return;  // an outer scope pinned this thread already
  cpu_set_t before;
  CPU_ZERO(&before);
  if (pthread_getaffinity_np(pthread_self(), sizeof(before), &before) != 0) return;
  saved_.resize(sizeof(before) / sizeof(uint64_t));
  std::memcpy(saved_.data(), &before, sizeof(before));
  PinThisThread(pool->cpus_[0]);
#else
  (void)pool;
#endif
}

ThreadPool::CallerScope::~CallerScope() {
#if defined(__linux__)
  if (!saved_.empty()) {
    cpu_set_t before;
    std::memcpy(&before, saved_.data(), sizeof(before));
    pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
  }
  if (counted_) --caller_scopes;
#endif
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

bool ThreadPool::Claim(uint32_t generation, int self, int64_t* chunk) {
  // The thread's own range first, from its front; then the others', from their backs, so that a
  // thread that finishes early takes the chunks their owners would have reached last.
  const int n = threads();
  for (int k = 0; k < n; ++k) {
    std::atomic<uint64_t>& range = ranges_[(self + k) % n];
    uint64_t r = range.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t front = (r >> 16) & 0xffff, back = r & 0xffff;
      if (static_cast<uint32_t>(r >> 32) != generation || front >= back) break;
      const uint64_t rest = k == 0 ? r + (uint64_t{1} << 16) : r - 1;
      if (range.compare_exchange_weak(r, rest, std::memory_order_acq_rel, std::memory_order_acquire)) {
        *chunk = static_cast<int64_t>(k == 0 ? front : back - 1);
        return true;
      }
    }
  }
  return false;
}

void ThreadPool::RunChunks(uint32_t generation, int self) {
  int64_t c;
  while (Claim(generation, self, &c)) {
    const int64_t begin = c * job_chunk_;
    (*job_)(begin, std::min(job_n_, begin + job_chunk_));
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::WorkerLoop(int index) {
#if defined(__linux__)
  if (!cpus_.empty()) PinThisThread(cpus_[index + 1]);
#else
  (void)index;
#endif
  uint32_t seen = 0;
  auto published = [&] { return generation_.load(std::memory_order_acquire); };
  for (;;) {
    uint32_t current = published();
    for (int spin = 0; current == seen && !stop_.load(std::memory_order_relaxed); ++spin) {
      if (resting_.load(std::memory_order_relaxed)) spin = std::max(spin, kSpinIterations + kYieldIterations);
      if (spin < kSpinIterations) {
        FACESIGHT_PAUSE();
      } else if (spin < kSpinIterations + kYieldIterations) {
        std::this_thread::yield();
      } else {
        // Checked again under the lock, so a job published before we sleep is never missed.
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return stop_.load() || published() != seen; });
        sleepers_.fetch_sub(1);
        spin = 0;
      }
      current = published();
    }
    if (stop_.load()) return;
    seen = current;
    RunChunks(current, index + 1);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t threads = this->threads();
  // Several chunks per thread, so that threads which finish early can take some of the others' work
  // (uneven work, a slower or preempted core); a chunk costs one atomic CAS.
  int64_t chunks = std::min<int64_t>({threads * 4, (n + grain - 1) / std::max<int64_t>(1, grain), 0xffff});
  chunks = std::max<int64_t>(1, chunks);
  const int64_t chunk = (n + chunks - 1) / chunks;
  const int64_t job_chunks = (n + chunk - 1) / chunk;
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  done_.store(0, std::memory_order_relaxed);
  resting_.store(false, std::memory_order_relaxed);
  const uint32_t generation = ++generation_count_;
  for (int64_t t = 0; t < threads; ++t)  // thread t's own chunks: [t·chunks/threads, (t+1)·chunks/threads)
    ranges_[t].store(static_cast<uint64_t>(generation) << 32 | static_cast<uint64_t>(t * job_chunks / threads) << 16 |
                         static_cast<uint64_t>((t + 1) * job_chunks / threads),
                     std::memory_order_relaxed);
  // seq_cst: publishes the job and the ranges, and orders against sleepers_ below.
  generation_.store(generation);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  RunChunks(generation, 0);
  // Only chunks a worker has claimed are waited for; the rest the caller ran itself.
  for (int spin = 0; done_.load(std::memory_order_acquire) != job_chunks; ++spin) {
    if (spin < kSpinIterations) FACESIGHT_PAUSE();
    else std::this_thread::yield();  // a preempted worker needs this core to finish its chunk
  }
  job_ = nullptr;
}

void ThreadPool::Rest() { resting_.store(true, std::memory_order_relaxed); }

}  // namespace facesight
