// Run-time choice between the per-ISA copies of a kernel table. A *_simd.cpp file compiled once per
// instruction set (simd_variants.cmake) defines `const Type symbol` in namespace simd_<isa>;
// FACESIGHT_ISA_DISPATCH(Type, symbol, Function) declares those copies and defines
// `const Type& Function()`, which returns the best one this CPU runs (see cpu_features.h).
#pragma once
#include "common/cpu_features.h"

#if defined(FACESIGHT_HAS_ISA_avx512)
#define FACESIGHT_ISA_DECLARE_avx512(Type, symbol) namespace simd_avx512 { extern const Type symbol; }
#define FACESIGHT_ISA_CASE_avx512(symbol) case Isa::Avx512: return simd_avx512::symbol;
#else
#define FACESIGHT_ISA_DECLARE_avx512(Type, symbol)
#define FACESIGHT_ISA_CASE_avx512(symbol)
#endif
#if defined(FACESIGHT_HAS_ISA_avx2)
#define FACESIGHT_ISA_DECLARE_avx2(Type, symbol) namespace simd_avx2 { extern const Type symbol; }
#define FACESIGHT_ISA_CASE_avx2(symbol) case Isa::Avx2: return simd_avx2::symbol;
#else
#define FACESIGHT_ISA_DECLARE_avx2(Type, symbol)
#define FACESIGHT_ISA_CASE_avx2(symbol)
#endif

#define FACESIGHT_ISA_DISPATCH(Type, symbol, Function)        \
  namespace simd_generic { extern const Type symbol; }        \
  FACESIGHT_ISA_DECLARE_avx2(Type, symbol)                    \
  FACESIGHT_ISA_DECLARE_avx512(Type, symbol)                  \
  const Type& Function() {                                    \
    switch (BestIsa()) {                                      \
      FACESIGHT_ISA_CASE_avx512(symbol)                       \
      FACESIGHT_ISA_CASE_avx2(symbol)                         \
      default: return simd_generic::symbol;                   \
    }                                                         \
  }
