#!/usr/bin/env bash
# The one command for a lent GPU machine (CMake + CUDA, no Node.js): configure and build the C++ core
# and its tests in Release for sm_90, then run every ctest test — the CPU ones in parallel, then the
# GPU ones (label "gpu") alone, so that their timings are undisturbed. Everything is teed to
# $OUT/gpu-test.log (./gpu-out/ when OUT is unset); the GPU timing table also goes to gpu-timings.md,
# with PyTorch reference and ratio rows when torch is installed (bench/pytorch_reference.py).
# A GPU test that skips (exit 77: no usable device) counts as a failure here. Ends with one SUMMARY line.
# test_cuda_pipeline needs real networks and photos from gpu-data/ (git-ignored; the GPU machine has no
# Node.js): run `node scripts/gpu/prepare-data.mjs` here first, and carry gpu-data with the device call
# (carry: ["gpu-data"]). FACESIGHT_REQUIRE_DATA=1 is set, so a missing folder fails the run.
#   bash scripts/gpu/run.sh         env: OUT, BUILD_DIR (default build-gpu/), JOBS (16), CUDA_ARCH (90),
#                                   FACESIGHT_GPU_DATA (default gpu-data/)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT_DIR=${OUT:-$ROOT/gpu-out}
BUILD_DIR=${BUILD_DIR:-$ROOT/build-gpu}   # build-*/ is git-ignored, so a warm machine rebuilds incrementally
JOBS=${JOBS:-16}
CUDA_ARCH=${CUDA_ARCH:-90}
export FACESIGHT_GPU_DATA=$(cd "$ROOT" && realpath -m "${FACESIGHT_GPU_DATA:-gpu-data}")
export FACESIGHT_REQUIRE_DATA=${FACESIGHT_REQUIRE_DATA:-1}
mkdir -p "$OUT_DIR"
LOG=$OUT_DIR/gpu-test.log
exec > >(tee "$LOG") 2>&1
TEE_PID=$!
START=$(date +%s)
RESULT=""
step() { echo; echo "== $* ($(( $(date +%s) - START )) s)"; }
finish() {
  local rc=$?
  echo
  echo "SUMMARY gpu-run: ${RESULT:-stopped before the tests finished (exit $rc)}; $(( $(date +%s) - START )) s; log $LOG"
  exec 1>&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true   # let tee write the last lines before the machine collects $OUT
}
trap finish EXIT

step "tools"
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
command -v nvidia-smi >/dev/null 2>&1 || { echo "nvidia-smi not found: no NVIDIA driver on this machine"; exit 2; }
command -v nvcc >/dev/null 2>&1 || { echo "nvcc not found (looked on PATH and in /usr/local/cuda*/bin)"; exit 2; }
command -v cmake >/dev/null 2>&1 || { echo "cmake not found"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || nvidia-smi
nvcc --version | tail -n 2
cmake --version | head -n 1
echo "cores: $(nproc)"
[ -f "$FACESIGHT_GPU_DATA/manifest.json" ] && echo "gpu data: $FACESIGHT_GPU_DATA ($(du -sh "$FACESIGHT_GPU_DATA" | cut -f1))" \
  || echo "gpu data: none at $FACESIGHT_GPU_DATA (test_cuda_pipeline will fail: run node scripts/gpu/prepare-data.mjs and carry gpu-data)"
export CUDACXX=${CUDACXX:-$(command -v nvcc)}

step "configure (Release, CUDA architectures $CUDA_ARCH)"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" \
  -DFACESIGHT_CUDA=ON -DFACESIGHT_BUILD_TESTS=ON 2>&1 | tee "$OUT_DIR/configure.log"
# Without CUDA the GPU tests would silently not exist: stop instead.
grep -q "facesight: CUDA ON" "$OUT_DIR/configure.log" || { echo "CMake did not enable CUDA (see configure.log)"; exit 3; }

step "build (-j$JOBS)"
cmake --build "$BUILD_DIR" -j"$JOBS"

cd "$BUILD_DIR"
step "CPU tests: ctest -LE gpu"
CPU_RC=0
ctest --output-on-failure --timeout 240 -j"$JOBS" -LE gpu || CPU_RC=$?

step "GPU tests: ctest -L gpu (one at a time)"
GPU_RC=0
ctest -V --timeout 240 -L gpu 2>&1 | tee "$OUT_DIR/ctest-gpu.log" || GPU_RC=$?
if grep -Eq "test_cuda_[a-z_]+ \(Skipped\)|Total Tests: 0|No tests were found" "$OUT_DIR/ctest-gpu.log"; then
  echo "GPU tests were skipped or missing: no usable CUDA device, or CUDA was not built"
  GPU_RC=1
fi
sed -n 's/^[0-9]*: \(|.*|\)$/\1/p' "$OUT_DIR/ctest-gpu.log" > "$OUT_DIR/gpu-timings.md" || true

# PyTorch on the same networks (bench/pytorch_reference.py), where torch is installed: its rows and the
# engine/torch ratio rows join the timing table. Informational: it never fails the run.
step "PyTorch reference"
if python3 -c "import torch" >/dev/null 2>&1; then
  python3 "$ROOT/bench/pytorch_reference.py" --json "$OUT_DIR/pytorch-reference.json" \
    --engine-table "$OUT_DIR/gpu-timings.md" 2>&1 | tee "$OUT_DIR/pytorch-reference.md" || echo "PyTorch reference failed"
  grep -E '^\| (torch|ratio) ' "$OUT_DIR/pytorch-reference.md" >> "$OUT_DIR/gpu-timings.md" || true
else
  echo "skipped: python3 cannot import torch here"
fi

RESULT="CPU tests $([ "$CPU_RC" -eq 0 ] && echo passed || echo FAILED), GPU tests $([ "$GPU_RC" -eq 0 ] && echo passed || echo FAILED)"
[ "$CPU_RC" -eq 0 ] && [ "$GPU_RC" -eq 0 ]
