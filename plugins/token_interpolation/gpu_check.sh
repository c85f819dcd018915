#!/usr/bin/env bash
# All GPU-side checks of the TokenInterpolation kernels in one go (for a lent GPU machine or a dev box),
# bounded to ~8 minutes (each step under `timeout`), the numbers first:
#   1. the plugin harness against a prebuilt library (when INTI_PREBUILT is set)
#   2. bench.py (alone on the GPU; builds the PyTorch extension on first use; no torch.compile unless
#      BENCH_COMPILE=1)
#   3. a fresh CMake build of libinti_plugins.so + harness, run (in the background, overlapping 4)
#   4. tests/test_kernel_gpu.py
#   5. Nsight Compute: the split path's projection, weights and blend kernels (fp16, bench shape), then its
#      projection + blend in fp32
# Each step is independent: one failing does not hide the others. Logs go to OUTDIR.
#
#   plugins/token_interpolation/gpu_check.sh OUTDIR
set -x
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUTDIR="${1:-/tmp/inti_gpu_check}"
mkdir -p "$OUTDIR"
cd "$ROOT"
export PYTHONUNBUFFERED=1
TO_HARNESS="${TO_HARNESS:-60}" TO_BENCH="${TO_BENCH:-190}" TO_PYTEST="${TO_PYTEST:-130}" TO_NCU="${TO_NCU:-50}"  # seconds per step
T0=$(date +%s)
stamp() { echo "[gpu_check +$(( $(date +%s) - T0 ))s] $*"; }

{ nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  python3 -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', sys.version.split()[0])"
  nvcc --version | tail -1; cmake --version | head -1; } > "$OUTDIR/env.txt" 2>&1

if [[ -n "${INTI_PREBUILT:-}" ]]; then
  stamp "harness (prebuilt ${INTI_PREBUILT})"
  INTI_PREBUILT="$INTI_PREBUILT" timeout "$TO_HARNESS" bash "$HERE/run_harness.sh" /tmp/inti_harness_prebuilt > "$OUTDIR/harness_prebuilt.log" 2>&1
  echo "harness_prebuilt rc=$?" >> "$OUTDIR/harness_prebuilt.log"
fi

stamp "bench"
BENCH_ARGS=(--json "$OUTDIR/bench.json")
[[ "${BENCH_COMPILE:-0}" == 1 ]] || BENCH_ARGS+=(--no-compile)
timeout "$TO_BENCH" python3 "$HERE/bench.py" "${BENCH_ARGS[@]}" > "$OUTDIR/bench.log" 2>&1
echo "bench rc=$?" >> "$OUTDIR/bench.log"

stamp "harness build (background)"
( timeout "$TO_PYTEST" bash "$HERE/run_harness.sh" /tmp/inti_harness_build > "$OUTDIR/harness_build.log" 2>&1
  echo "harness_build rc=$?" >> "$OUTDIR/harness_build.log" ) &
HPID=$!

stamp "pytest tests/test_kernel_gpu.py"
timeout "$TO_PYTEST" python3 -m pytest -q -rA -p no:cacheprovider -s tests/test_kernel_gpu.py > "$OUTDIR/pytest.log" 2>&1
echo "pytest rc=$?" >> "$OUTDIR/pytest.log"
wait "$HPID"

NCU="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)"
if [[ -n "$NCU" && "${SKIP_NCU:-0}" != 1 ]]; then
  stamp "ncu (split projection, weights, blend; fp16, bench shape)"
  # NCU_KERNELS / NCU_VARIANTS / NCU_COUNT pick other kernels (e.g. ti_sp_pack_kernel / auto / 1)
  timeout "$TO_NCU" "$NCU" --clock-control none -k regex:"${NCU_KERNELS:-ti_sp_(proj|weights|blend)}" -c "${NCU_COUNT:-3}" \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --section WarpStateStats --section SchedulerStats python3 "$HERE/profile_one.py" --variants ${NCU_VARIANTS:-split} > "$OUTDIR/ncu.txt" 2>&1
  echo "ncu rc=$?" >> "$OUTDIR/ncu.txt"
  stamp "ncu fp32 (split: projection + blend)"
  timeout 45 "$NCU" --clock-control none -k regex:"ti_sp_(proj|blend)" -c 2 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section SchedulerStats \
    python3 "$HERE/profile_one.py" --dtype f32 --variants split >> "$OUTDIR/ncu.txt" 2>&1
  echo "ncu f32 rc=$?" >> "$OUTDIR/ncu.txt"
fi
stamp "done"

set +x
echo "================ env"; cat "$OUTDIR/env.txt"
for f in harness_prebuilt harness_build; do
  [[ -f "$OUTDIR/$f.log" ]] && { echo "================ $f"; grep -E "^device|FAIL |rror" "$OUTDIR/$f.log" | head -8; sed -n '/^summary:/,$p' "$OUTDIR/$f.log"; }
done
echo "================ pytest"; grep -E "max\|err\||PASSED|FAILED|ERROR|passed|failed|rc=" "$OUTDIR/pytest.log" | grep -v "^PASSED" | tail -70
echo "================ bench"; grep -v '^{' "$OUTDIR/bench.log" | grep -v -i "warn\|softmax\|split the\|important use\|^$" | tail -60
[[ -f "$OUTDIR/ncu.txt" ]] && { echo "================ ncu"; grep -E "ti_sp_|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Achieved Occupancy|Theoretical Occupancy|Registers Per|Shared Memory Config|Cluster|Warp Cycles Per Issued|Issued Warp|No Eligible|One or More|rc=|==ERR|==WARN" "$OUTDIR/ncu.txt" | head -110; }
