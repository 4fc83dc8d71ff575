// Shared by the CUDA kernels (vision/*.cu) and their callers. The host part compiles with any C++
// compiler and needs no CUDA headers: cudaStream_t is declared here exactly as the CUDA runtime
// declares it, so .cpp files (the pipeline) can hold and pass streams without the toolkit's include
// path. The device part (`#if defined(__CUDACC__)`) holds the helpers the kernels share.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;  // the runtime's own typedef; redeclaring it is harmless
#endif

namespace facesight {

// What a CUDA kernel launcher returns. Launchers never synchronise: a kernel's own failure shows up
// at the caller's next synchronising call, reported by the CUDA runtime there.
struct CudaStatus {
  enum Code : int32_t {
    kOk = 0,
    kInvalidArgument,     // a parameter the kernel cannot honour (detail says which)
    kWorkspaceTooSmall,   // workspace_bytes < the matching WorkspaceSize
    kCuda,                // the CUDA runtime refused a launch or copy; cuda_error holds its cudaError_t
  };
  Code code = kOk;
  int32_t cuda_error = 0;
  const char* detail = "";  // static string

  bool ok() const { return code == kOk; }
  static CudaStatus Ok() { return {}; }
  static CudaStatus Invalid(const char* what) { return {kInvalidArgument, 0, what}; }
  static CudaStatus Workspace() { return {kWorkspaceTooSmall, 0, "workspace smaller than its WorkspaceSize"}; }
};

// "invalid argument: <detail>", "workspace …", or the CUDA runtime's message. Defined in cuda_util.cu.
std::string CudaStatusMessage(const CudaStatus& status);
// Throws FaceException(ErrorCode::Device, "<what>: <message>") unless status is ok.
void ThrowIfFailed(const CudaStatus& status, const char* what);

// Workspace carving: hands out 256-byte aligned pieces of one caller-owned buffer. Run it once with a
// null base to size the workspace (WorkspaceSize functions), then with the real base to use it.
class WorkspaceCarver {
 public:
  explicit WorkspaceCarver(void* base = nullptr) : base_(static_cast<char*>(base)) {}
  template <typename T>
  T* Take(size_t count) {
    const size_t at = (used_ + 255) & ~size_t{255};
    used_ = at + count * sizeof(T);
    return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

// Ascending LSD radix sort of n 64-bit keys on bits [0, end_bit) (CUB's DeviceRadixSort, compiled
// once in cuda_util.cu). temp: SortKeys64TempBytes(n, end_bit) bytes — CUB sizes it for the current
// device, so the decode and NMS WorkspaceSize functions are meant to be called where they will run. Used by decode and NMS to put
// candidates in (score desc, index asc) order with keys built by ScoreIndexKey below.
size_t SortKeys64TempBytes(int64_t n, int end_bit);
CudaStatus SortKeys64(const uint64_t* keys_in, uint64_t* keys_out, int64_t n, int end_bit, void* temp,
                      size_t temp_bytes, cudaStream_t stream);

// Bits needed for indices [0, n): at least 1.
inline int IndexBits(int64_t n) {
  int bits = 1;
  while (bits < 62 && (int64_t{1} << bits) < n) ++bits;
  return bits;
}

}  // namespace facesight

#if defined(__CUDACC__)
namespace facesight {
namespace cuda_detail {

inline CudaStatus LastLaunchStatus() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? CudaStatus::Ok() : CudaStatus{CudaStatus::kCuda, static_cast<int32_t>(err), ""};
}
inline CudaStatus FromCuda(cudaError_t err) {
  return err == cudaSuccess ? CudaStatus::Ok() : CudaStatus{CudaStatus::kCuda, static_cast<int32_t>(err), ""};
}

inline unsigned GridFor(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// The CPU kernels are compiled without FMA contraction (baseline x86-64); nvcc contracts a·b + c by
// default. Where the GPU result is meant to equal the CPU's bit for bit (sampling, decode, IoU), the
// arithmetic goes through these explicitly rounded operations, which nvcc never fuses.
__device__ __forceinline__ float Add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float Sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float Mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double AddD(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double SubD(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double MulD(double a, double b) { return __dmul_rn(a, b); }
// a + w·(b − a): the CPU kernels' lerp (weight 0 returns a exactly).
__device__ __forceinline__ float Lerp(float a, float b, float w) { return Add(a, Mul(w, Sub(b, a))); }
// (v − mean) · inv_std
__device__ __forceinline__ float Normalize(float v, float mean, float inv_std) { return Mul(Sub(v, mean), inv_std); }

// exp of a float as glibc's expf gives it (correctly rounded in all but rare cases): through double.
__device__ __forceinline__ float ExpF(float x) { return static_cast<float>(exp(static_cast<double>(x))); }

// std::min / std::max exactly (NaN handling included): min(a, b) = b < a ? b : a.
__device__ __forceinline__ float StdMin(float a, float b) { return b < a ? b : a; }
__device__ __forceinline__ float StdMax(float a, float b) { return a < b ? b : a; }

// A 64-bit key whose ascending order is (score descending, index ascending), on bits [0, 32 + index_bits).
// −0 counts as +0 (the CPU compares them equal, so they must tie and fall back to the index).
__device__ __forceinline__ uint64_t ScoreIndexKey(float score, uint32_t index, int index_bits) {
  uint32_t u = __float_as_uint(score == 0.f ? 0.f : score);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending order of floats as unsigned
  return (static_cast<uint64_t>(~u) << index_bits) | index;
}
__device__ __forceinline__ uint32_t KeyIndex(uint64_t key, int index_bits) {
  return static_cast<uint32_t>(key & ((uint64_t{1} << index_bits) - 1));
}

}  // namespace cuda_detail
}  // namespace facesight
#endif
