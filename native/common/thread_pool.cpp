#include "common/thread_pool.h"

#include <algorithm>

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

ThreadPool::ThreadPool(int threads) {
  for (int k = 1; k < std::max(1, threads); ++k) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::RunChunks() {
  for (;;) {
    int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= job_chunks_) break;
    int64_t begin = c * job_chunk_;
    (*job_)(begin, std::min(job_n_, begin + job_chunk_));
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t current = generation_.load(std::memory_order_acquire);
    for (int spin = 0; current == seen && !stop_.load(std::memory_order_relaxed); ++spin) {
      if (spin < kSpinIterations) {
        FACESIGHT_PAUSE();
      } else if (spin < kSpinIterations + kYieldIterations) {
        std::this_thread::yield();
      } else {
        // Checked again under the lock, so a job published before we sleep is never missed.
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        spin = 0;
      }
      current = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = current;
    RunChunks();
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t threads = this->threads();
  // Many small chunks, taken dynamically, balance uneven work; a chunk costs one atomic increment.
  int64_t chunks = std::min<int64_t>(threads * 4, (n + grain - 1) / std::max<int64_t>(1, grain));
  chunks = std::max<int64_t>(1, chunks);
  const int64_t chunk = (n + chunks - 1) / chunks;
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  job_chunks_ = (n + chunk - 1) / chunk;
  next_chunk_.store(0, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: publishes the job, and orders against sleepers_ below
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  RunChunks();
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpinIterations) FACESIGHT_PAUSE();
    else std::this_thread::yield();  // a preempted worker needs this core to finish its chunk
  }
  job_ = nullptr;
}

}  // namespace facesight
