// The fork-join pool: every index covered exactly once, across thousands of back-to-back jobs of
// varied sizes, with more pool threads than cores (workers preempted or waking late must never run
// a chunk of a finished job, nor be waited for), and pools running side by side.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "common/thread_pool.h"
#include "test_util.h"

using namespace facesight;
using namespace facesight_test;

static void Hammer(ThreadPool* pool, uint32_t seed, std::atomic<int>* bad) {
  std::mt19937 rng(seed);
  std::vector<std::atomic<int>> hits(5000);
  for (int job = 0; job < 3000; ++job) {
    const int64_t n = rng() % 5000 + 1, grain = rng() % 64 + 1;
    for (int64_t i = 0; i < n; ++i) hits[i].store(0, std::memory_order_relaxed);
    pool->ParallelFor(n, grain, [&](int64_t b, int64_t e) {
      if (b < 0 || e > n || b >= e) bad->fetch_add(1);
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
      if (job % 7 == 0) std::this_thread::yield();  // uneven chunks
    });
    for (int64_t i = 0; i < n; ++i)
      if (hits[i].load(std::memory_order_relaxed) != 1) { bad->fetch_add(1); break; }
  }
}

#if defined(__linux__)
#include <pthread.h>
#include <cstdlib>
#include <string>
#include <sched.h>

static int AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
  return CPU_COUNT(&set);
}

// A pool over every CPU pins its threads: the caller keeps to one CPU inside a CallerScope (nested
// scopes included) and gets its whole mask back after; a pool over more threads than CPUs does not pin.
static void CheckPinning() {
  const int cpus = AllowedCpus();
  const char* off = std::getenv("FACESIGHT_PIN_THREADS");
  if (cpus < 2 || (off && std::string(off) == "0")) return;
  ThreadPool pool(cpus);
  {
    ThreadPool::CallerScope outer(&pool);
    CHECK(AllowedCpus() == 1, "inside a scope the caller keeps to one CPU (has %d)", AllowedCpus());
    {
      ThreadPool::CallerScope inner(&pool);
      CHECK(AllowedCpus() == 1, "nested scope: still one CPU (%d)", AllowedCpus());
    }
    CHECK(AllowedCpus() == 1, "after the nested scope: still pinned (%d)", AllowedCpus());
    std::atomic<int64_t> sum{0};
    pool.ParallelFor(1000, 1, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) sum += i; });
    CHECK(sum.load() == 999 * 1000 / 2, "pinned pool computes: %lld", (long long)sum.load());
  }
  CHECK(AllowedCpus() == cpus, "after the scope: the whole mask again (%d of %d)", AllowedCpus(), cpus);
  ThreadPool wide(cpus + 1);
  ThreadPool::CallerScope scope(&wide);
  CHECK(AllowedCpus() == cpus, "a pool over more threads than CPUs does not pin (%d)", AllowedCpus());
}
#else
static void CheckPinning() {}
#endif

// Each thread runs its own share of a job (the caller the first 1/threads of the chunks, worker k
// the (k+1)-th), so consecutive steps keep their data on one core; a thread that finishes early takes
// the chunks another has not reached. Chunks of a few milliseconds, so that a worker's wake-up
// latency does not matter: handed out in claim order instead, about half would run away from home.
// Each property gets three tries, so that a worker the host preempts for a while (a busy CI machine)
// does not fail it; a pool without the property fails all three.
static void CheckShares() {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  int at_home = 0, chunks = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    at_home = chunks = 0;
    for (int job = 0; job < 10; ++job) {
      std::vector<int> on_caller(8, -1);
      pool.ParallelFor(8, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) on_caller[i] = std::this_thread::get_id() == caller;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      });
      for (int i = 0; i < 8; ++i, ++chunks) at_home += on_caller[i] == (i < 4 ? 1 : 0);
    }
    if (at_home >= chunks * 9 / 10) break;
  }
  CHECK(at_home >= chunks * 9 / 10, "%d of %d chunks ran on the thread whose share they are", at_home, chunks);
  // The caller's share is slow: the worker takes some of it, from the back.
  std::vector<int> on_caller(8, -1);
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::fill(on_caller.begin(), on_caller.end(), -1);
    pool.ParallelFor(8, 1, [&](int64_t b, int64_t e) {
      const bool mine = std::this_thread::get_id() == caller;
      for (int64_t i = b; i < e; ++i) on_caller[i] = mine;
      if (b < 4) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    });
    if (on_caller[0] == 1 && on_caller[3] == 0) break;
  }
  CHECK(on_caller[0] == 1, "the caller starts at the front of its share");
  CHECK(on_caller[3] == 0, "the idle worker took the last chunk of the caller's slow share");
}

int main() {
  CheckPinning();
  CheckShares();
  std::atomic<int> bad{0};
  {
    ThreadPool pool(2);
    Hammer(&pool, 1, &bad);
  }
  CHECK(bad.load() == 0, "one pool: %d bad jobs", bad.load());
  // Oversubscribed: 3 pools of 4 threads at once.
  bad.store(0);
  std::vector<std::thread> callers;
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int k = 0; k < 3; ++k) pools.push_back(std::make_unique<ThreadPool>(4));
  for (int k = 0; k < 3; ++k) callers.emplace_back([&, k] { Hammer(pools[k].get(), 10 + k, &bad); });
  for (auto& t : callers) t.join();
  CHECK(bad.load() == 0, "oversubscribed: %d bad jobs", bad.load());
  // A pool whose workers went to sleep (idle long enough) still wakes for the next job.
  ThreadPool sleepy(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::atomic<int64_t> sum{0};
  sleepy.ParallelFor(1000, 1, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) sum += i; });
  CHECK(sum.load() == 999 * 1000 / 2, "sum %lld", (long long)sum.load());
  return Finish("test_thread_pool");
}
