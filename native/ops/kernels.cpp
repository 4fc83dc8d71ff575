#include "ops/kernels.h"

#include "common/isa_dispatch.h"

namespace facesight {

FACESIGHT_ISA_DISPATCH(SimdKernels, kKernels, Kernels)

}  // namespace facesight
