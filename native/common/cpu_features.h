// Which SIMD variant of the kernels this CPU runs (decided once, at first use).
#pragma once
#include <string>

namespace facesight {

enum class Isa { Generic, Avx2, Avx512 };

Isa BestIsa();
const char* IsaName(Isa isa);

}  // namespace facesight
