#!/usr/bin/env bash
# Builds libinti_plugins.so and ti_harness against the TensorRT headers, writes reference cases with
# PyTorch (make_reference.py), and drives the plugin through its creator on the GPU (no libnvinfer).
#
#   plugins/token_interpolation/run_harness.sh [BUILD_DIR]
#
# Environment:
#   TensorRT_ROOT   TensorRT install or source tree whose include/ has NvInfer.h (default: <repo>/.trt)
#   CUDA_ARCH       CMAKE_CUDA_ARCHITECTURES (default: the first GPU's, from nvidia-smi; else 90)
#   PYTHON          Python with torch for the reference (default: python3)
#   INTI_PREBUILT   directory holding an already built libinti_plugins.so and ti_harness: skip the build
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="${1:-$HERE/build}"
PYTHON="${PYTHON:-python3}"
TensorRT_ROOT="${TensorRT_ROOT:-$ROOT/.trt}"

if [[ -n "${INTI_PREBUILT:-}" ]]; then
  BIN="$INTI_PREBUILT"
  echo "using prebuilt $BIN"
else
  if [[ -z "${CUDA_ARCH:-}" ]]; then
    CUDA_ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')"
    CUDA_ARCH="${CUDA_ARCH:-90}"
  fi
  cmake -S "$HERE" -B "$BUILD" -DTensorRT_ROOT="$TensorRT_ROOT" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" \
    -DINTI_BUILD_HARNESS=ON -DPython3_EXECUTABLE="$(command -v "$PYTHON")"
  cmake --build "$BUILD" -j "$(nproc)"
  BIN="$BUILD"
fi

CASES="$BUILD/cases"
mkdir -p "$CASES"
"$PYTHON" "$HERE/make_reference.py" "$CASES"
"$BIN/ti_harness" "$BIN/libinti_plugins.so" "$CASES"
