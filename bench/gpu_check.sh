#!/usr/bin/env bash
# GPU check of wsc: build the extension with the CUDA kernels, run the tests (CUDA cases
# included) and the GPU benchmarks, print a short table. About 2-4 minutes on one H200.
#
#   bench/gpu_check.sh            build in build/gpu-check (CMake), test and benchmark the tree
#   bench/gpu_check.sh --pip      build and install with `pip install --no-build-isolation .`
#   bench/gpu_check.sh --no-build reuse the extension already in python/wsc
#   WSC_BENCH_N=2e8 bench/gpu_check.sh   fewer weights per benchmark (default 1e9)
#
# Needs: nvcc (PATH or /usr/local/cuda/bin), cmake, ninja or make, a Python with torch built
# for CUDA, numpy, pybind11, scikit-build-core (for --pip), pytest and hypothesis.
# Exit status: 0 all passed; 1 build or tests failed; 2 built, but no usable GPU (reason printed).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=build/gpu-check
mkdir -p "$OUT"
MODE=cmake
for arg in "$@"; do
  case $arg in
    --pip) MODE=pip ;;
    --no-build) MODE=none ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg" >&2; exit 1 ;;
  esac
done
PY=${PYTHON:-python3}
JOBS=$(nproc 2>/dev/null || echo 2)
step() { printf '\n==> %s\n' "$*"; }

# Python that imports wsc from this tree (python/), even where an editable install of wsc
# elsewhere has put its import redirector first on sys.meta_path.
tree_python() {
  "$PY" - "$@" <<'EOF'
import runpy, sys
sys.meta_path = [f for f in sys.meta_path if type(f).__name__ != "ScikitBuildRedirectingFinder"]
sys.path.insert(0, "python")
target, sys.argv = sys.argv[1], sys.argv[1:]
if target == "-c":
    exec(compile(sys.argv[1], "<gpu_check>", "exec"))
elif target.endswith(".py"):
    sys.path.insert(0, target.rsplit("/", 1)[0])
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
EOF
}
run_py() { if [ "$MODE" = pip ]; then "$PY" "$@"; else tree_python "$@"; fi; }

step "environment"
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ] && [ "$MODE" != none ]; then
  echo "gpu_check: nvcc not found (PATH, /usr/local/cuda/bin): cannot build the CUDA kernels" >&2
  exit 1
fi
[ -n "$NVCC" ] && "$NVCC" --version | tail -1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  || echo "nvidia-smi: not available"
"$PY" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuda available:', torch.cuda.is_available())" \
  || { echo "gpu_check: torch does not import" >&2; exit 1; }

case $MODE in
  cmake)
    step "build (CMake, WSC_CUDA=ON, $JOBS jobs) -> $OUT"
    GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
    start=$(date +%s)
    cmake -S . -B "$OUT/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DWSC_CUDA=ON \
        -DCMAKE_CUDA_COMPILER="$NVCC" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
        -DPython_EXECUTABLE="$(command -v "$PY")" \
        -DSKBUILD_PROJECT_NAME=wsc -DSKBUILD_PROJECT_VERSION=0.1.0 > "$OUT/configure.log" 2>&1 \
      || { tail -30 "$OUT/configure.log"; echo "gpu_check: CMake configure failed ($OUT/configure.log)" >&2; exit 1; }
    grep "wsc:" "$OUT/configure.log"
    cmake --build "$OUT/build" -j "$JOBS" > "$OUT/build.log" 2>&1 \
      || { grep -E "error|Error" "$OUT/build.log" | head -30; echo "gpu_check: build failed ($OUT/build.log)" >&2; exit 1; }
    cp "$OUT"/build/_C*.so python/wsc/
    echo "built in $(( $(date +%s) - start )) s"
    ;;
  pip)
    step "build and install (pip, WSC_CUDA=ON)"
    start=$(date +%s)
    WSC_CUDA=ON CUDACXX="$NVCC" CMAKE_BUILD_PARALLEL_LEVEL=$JOBS "$PY" -m pip install --no-build-isolation --no-deps . \
        > "$OUT/pip.log" 2>&1 || { tail -40 "$OUT/pip.log"; echo "gpu_check: pip install failed" >&2; exit 1; }
    echo "built and installed in $(( $(date +%s) - start )) s"
    ;;
esac

step "extension"
run_py -c 'import wsc, wsc._cuda as c; print("wsc from", wsc.__file__); print("built with CUDA:", wsc._C.built_with_cuda); print(wsc._C.cuda_runtime_info()); r = c.unavailable_reason(); print("cuda_available:", r is None, "" if r is None else "(" + r + ")")' \
  || { echo "gpu_check: the extension does not import" >&2; exit 1; }
REASON=$(run_py -c 'import wsc._cuda as c; print(c.unavailable_reason() or "")' 2>/dev/null | tail -1)
BUILT=$(run_py -c 'import wsc; print(int(wsc._C.built_with_cuda))' 2>/dev/null | tail -1)
if [ "$BUILT" != 1 ]; then
  echo "gpu_check: the extension was built without CUDA kernels" >&2
  exit 1
fi

if [ -n "$REASON" ]; then
  step "host-side checks of the CUDA build (no GPU needed)"
  run_py pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_build.py || exit 1
  printf '\ngpu_check: the CUDA kernels compiled and the extension imports, but there is no usable GPU here:\n  %s\nGPU tests and benchmarks not run.\n' "$REASON" >&2
  exit 2
fi

status=0
step "tests of the kernels, CPU and CUDA"
TESTS="tests/test_cuda.py tests/test_ops.py tests/test_opcheck.py tests/test_ops_errors.py tests/test_huffman.py tests/test_build.py"
start=$(date +%s)
# shellcheck disable=SC2086
run_py pytest -q -p no:cacheprovider -rfs $TESTS 2>&1 | tee "$OUT/tests.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "tests took $(( $(date +%s) - start )) s"
grep -E "^SKIPPED.*no CUDA device" "$OUT/tests.log" && { echo "gpu_check: CUDA tests were skipped on a GPU machine" >&2; status=1; }

step "GPU benchmarks"
run_py bench/bench_gpu.py --n "${WSC_BENCH_N:-1e9}" --markdown "$OUT/table.md" || status=1

step "summary"
cat "$OUT/table.md" 2>/dev/null
[ $status -eq 0 ] && echo "gpu_check: tests passed" || echo "gpu_check: FAILURES (see $OUT/tests.log)"
exit $status
