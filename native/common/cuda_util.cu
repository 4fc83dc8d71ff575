#include "common/cuda_util.h"

#include <cub/device/device_radix_sort.cuh>

#include "common/error.h"

namespace facesight {

std::string CudaStatusMessage(const CudaStatus& status) {
  switch (status.code) {
    case CudaStatus::kOk: return "ok";
    case CudaStatus::kInvalidArgument: return std::string("invalid argument: ") + status.detail;
    case CudaStatus::kWorkspaceTooSmall: return status.detail;
    default:
      return std::string("CUDA error ") + cudaGetErrorName(static_cast<cudaError_t>(status.cuda_error)) + ": " +
             cudaGetErrorString(static_cast<cudaError_t>(status.cuda_error));
  }
}

void ThrowIfFailed(const CudaStatus& status, const char* what) {
  if (!status.ok()) Fail(ErrorCode::Device, what, ": ", CudaStatusMessage(status));
}

size_t SortKeys64TempBytes(int64_t n, int end_bit) {
  size_t bytes = 0;
  // A size query only: CUB launches nothing when the temp pointer is null.
  cub::DeviceRadixSort::SortKeys(nullptr, bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
                                 static_cast<int>(n), 0, end_bit, cudaStream_t{});
  return bytes;
}

CudaStatus SortKeys64(const uint64_t* keys_in, uint64_t* keys_out, int64_t n, int end_bit, void* temp,
                      size_t temp_bytes, cudaStream_t stream) {
  if (n <= 0) return CudaStatus::Ok();
  if (n > INT32_MAX) return CudaStatus::Invalid("SortKeys64: more than 2^31 keys");
  if (temp_bytes < SortKeys64TempBytes(n, end_bit)) return CudaStatus::Workspace();
  return cuda_detail::FromCuda(
      cub::DeviceRadixSort::SortKeys(temp, temp_bytes, keys_in, keys_out, static_cast<int>(n), 0, end_bit, stream));
}

}  // namespace facesight
