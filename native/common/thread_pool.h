// A small fork-join pool: ParallelFor splits [0, n) into chunks run by the workers and the caller.
// One pool per model, so a model's `threads` option bounds the cores it uses. Workers spin briefly
// before sleeping: a network runs dozens of short parallel steps back to back, and a futex wake-up
// per step would cost more than many of the steps themselves.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace facesight {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over disjoint ranges covering [0, n); each range has at least `grain`
  // items (except the last). Blocks until all are done. Not reentrant: one ParallelFor at a time.
  // Thread t runs the t-th of `threads` equal shares of [0, n) unless another thread takes over part
  // of it, so ops that order their items the same way keep each thread on the data it wrote.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // While it lives, keeps the calling thread on the one CPU the workers leave free, when the pool
  // pins its threads (below). Nested scopes (a pipeline's stages) do nothing more.
  class CallerScope {
   public:
    explicit CallerScope(const ThreadPool* pool);
    ~CallerScope();
    CallerScope(const CallerScope&) = delete;
    CallerScope& operator=(const CallerScope&) = delete;

   private:
    bool counted_ = false;
    std::vector<uint64_t> saved_;  // the thread's CPU mask before (empty: nothing to restore)
  };

  // The caller has no more work coming soon (a network run finished): idle workers sleep at once
  // instead of spinning, so they leave the cores to the threads that take the results (on a 2-core
  // machine, Node's main thread). The next ParallelFor wakes them.
  void Rest();

 private:
  void WorkerLoop(int index);
  bool Claim(uint32_t generation, int self, int64_t* chunk);
  void RunChunks(uint32_t generation, int self);

  std::vector<std::thread> workers_;
  // When the pool spans every CPU the process may use, each thread keeps to one: cpus_[0] for the
  // caller (CallerScope), cpus_[k + 1] for worker k. Left to the scheduler, a woken worker or the
  // calling thread (a libuv thread, woken by Node's main thread) often lands on the CPU the other is
  // running on, and a whole run then goes single-threaded until the balancer moves one (half the
  // runs of a 2.5 ms network took 4+ ms). Empty: not pinned (fewer threads than CPUs, other
  // systems, FACESIGHT_PIN_THREADS=0).
  std::vector<int> cpus_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // Written by the caller before it publishes a job; read only by whoever claims one of its chunks.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 1;
  uint32_t generation_count_ = 0;  // caller only
  // The job a worker has not run yet: a new generation number.
  std::atomic<uint32_t> generation_{0};
  // Per thread (0: the caller, k + 1: worker k), generation << 32 | front << 16 | back: the chunks
  // [front, back) of its share of the job not yet claimed. Each thread runs its own share from the
  // front and, once it is done, takes the others' from the back. The shares are the same fraction of
  // every job, so a thread reads what it wrote one step before: on machines where two cores share no
  // cache (here, 210 ns one way), chunks handed out in claim order read half of each layer from the
  // other core (FaceNet batch 1: 10 % of its time). A chunk is claimed by a CAS that also checks
  // the generation, so a worker that wakes late can never take (or wait on) a finished job: the
  // caller waits for chunks done, not for every worker to show up (a preempted worker would stall
  // it for a whole scheduler slice on a loaded machine).
  std::unique_ptr<std::atomic<uint64_t>[]> ranges_;
  std::atomic<int64_t> done_{0};  // chunks of the current job finished
  std::atomic<int> sleepers_{0};
  std::atomic<bool> resting_{false};
  std::atomic<bool> stop_{false};
};

// Runs fn over [0, n) on the pool when there is one and the work is worth splitting.
inline void ParallelFor(ThreadPool* pool, int64_t n, int64_t grain,
                        const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (!pool || pool->threads() == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  pool->ParallelFor(n, grain, fn);
}

}  // namespace facesight
