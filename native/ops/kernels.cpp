#include "ops/kernels.h"

#include "common/cpu_features.h"

namespace facesight {

#define FACESIGHT_DECLARE_ISA(isa) namespace simd_##isa { extern const SimdKernels kKernels; }
#if defined(FACESIGHT_HAS_ISA_generic)
FACESIGHT_DECLARE_ISA(generic)
#endif
#if defined(FACESIGHT_HAS_ISA_avx2)
FACESIGHT_DECLARE_ISA(avx2)
#endif
#if defined(FACESIGHT_HAS_ISA_avx512)
FACESIGHT_DECLARE_ISA(avx512)
#endif

const SimdKernels& Kernels() {
  switch (BestIsa()) {
#if defined(FACESIGHT_HAS_ISA_avx512)
    case Isa::Avx512: return simd_avx512::kKernels;
#endif
#if defined(FACESIGHT_HAS_ISA_avx2)
    case Isa::Avx2: return simd_avx2::kKernels;
#endif
    default: return simd_generic::kKernels;
  }
}

}  // namespace facesight
