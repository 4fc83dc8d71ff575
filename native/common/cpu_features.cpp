#include "common/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace facesight {

static Isa DetectIsa() {
  // FACESIGHT_ISA=generic|avx2 forces a lower variant (for tests of every variant on one machine).
  const char* forced = std::getenv("FACESIGHT_ISA");
  Isa best = Isa::Generic;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
#if defined(FACESIGHT_HAS_ISA_avx2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::Avx2;
#endif
#if defined(FACESIGHT_HAS_ISA_avx512)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    best = Isa::Avx512;
#endif
#endif
  if (forced) {
    if (!std::strcmp(forced, "generic")) return Isa::Generic;
    if (!std::strcmp(forced, "avx2") && best == Isa::Avx512) return Isa::Avx2;
  }
  return best;
}

Isa BestIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace facesight
