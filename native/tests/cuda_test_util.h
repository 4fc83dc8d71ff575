// What the GPU tests share: error checks that stop the test, a device array, a cudaEvent timer, and
// the skip (exit code 77) where no CUDA device is usable.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/cuda_util.h"

namespace facesight_test {

inline void CudaOk(cudaError_t err, const char* what, int line) {
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "FATAL line %d: %s: %s\n", line, what, cudaGetErrorString(err));
  std::exit(1);
}
#define CUDA_OK(expr) facesight_test::CudaOk((expr), #expr, __LINE__)

inline void StatusOk(const facesight::CudaStatus& st, const char* what, int line) {
  if (st.ok()) return;
  std::fprintf(stderr, "FATAL line %d: %s: %s\n", line, what, facesight::CudaStatusMessage(st).c_str());
  std::exit(1);
}
#define STATUS_OK(expr) facesight_test::StatusOk((expr), #expr, __LINE__)

// A device array. Sized in elements; zero-size is a null pointer.
template <typename T>
class Dev {
 public:
  Dev() = default;
  explicit Dev(size_t n) : n_(n) {
    if (n) CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  explicit Dev(const std::vector<T>& host) : Dev(host.size()) { Upload(host); }
  ~Dev() {
    if (p_) cudaFree(p_);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  Dev(Dev&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  Dev& operator=(Dev&& o) noexcept {
    std::swap(p_, o.p_), std::swap(n_, o.n_);
    return *this;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void Upload(const std::vector<T>& host) {
    if (!host.empty()) CUDA_OK(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download(size_t n = SIZE_MAX) const {
    std::vector<T> host(std::min(n, n_));
    if (!host.empty()) CUDA_OK(cudaMemcpy(host.data(), p_, host.size() * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline void Sync() { CUDA_OK(cudaDeviceSynchronize()); }

struct Timer {
  cudaEvent_t start, stop;
  Timer() {
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
  }
  ~Timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  // p50 of `runs` timed launches after one warm-up, in milliseconds.
  double P50(const std::function<void()>& launch, int runs = 20) {
    launch();
    Sync();
    std::vector<double> ms;
    for (int i = 0; i < runs; ++i) {
      CUDA_OK(cudaEventRecord(start));
      launch();
      CUDA_OK(cudaEventRecord(stop));
      CUDA_OK(cudaEventSynchronize(stop));
      float t = 0;
      CUDA_OK(cudaEventElapsedTime(&t, start, stop));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }
};

// False (after saying why) when no CUDA device is usable: the test then exits 77, which ctest counts
// as skipped. Prints the device otherwise.
inline bool GpuUsable(const char* test) {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    std::printf("%s: skipped, no usable CUDA device (%s)\n", test, err != cudaSuccess ? cudaGetErrorString(err) : "no device found");
    return false;
  }
  if (cudaFree(nullptr) != cudaSuccess) {  // creates the context: fails on a broken driver setup
    std::printf("%s: skipped, CUDA context creation failed\n", test);
    return false;
  }
  cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, compute capability %d.%d, %zu MiB\n", prop.name, prop.major, prop.minor, prop.totalGlobalMem >> 20);
  return true;
}

// The GPU timing table (scripts/gpu/run.sh collects its rows from every GPU test's output).
inline void TimingHeader(const char* how) {
  std::printf("\nTimings (%s):\n", how);
  std::printf("| %-26s | %-52s | %9s | %-22s |\n", "kernel", "size", "p50 ms", "rate");
  std::printf("|%s|%s|%s|%s|\n", std::string(28, '-').c_str(), std::string(54, '-').c_str(), std::string(11, '-').c_str(),
              std::string(24, '-').c_str());
}
inline void Row(const char* kernel, const char* size, double ms, const char* rate) {
  std::printf("| %-26s | %-52s | %9.3f | %-22s |\n", kernel, size, ms, rate);
}

// Timings run unless --no-bench is given or FACESIGHT_GPU_BENCH=0.
inline bool BenchRequested(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--no-bench") == 0) return false;
  const char* env = std::getenv("FACESIGHT_GPU_BENCH");
  return !(env && std::strcmp(env, "0") == 0);
}

}  // namespace facesight_test
