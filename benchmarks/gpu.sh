#!/usr/bin/env bash
# One GPU window, one call: the speed suite at CIFAR-10 scale (SimSiam, SimCLR, BYOL x
# ResNet-18, batch 512, 32x32, bf16, channels_last; eager, then torch.compile) and the fidelity
# sprints (SimCLR and BYOL, full-width ResNet-18, 32 px, all 60k Fashion-MNIST images, 2.5
# minutes of pretraining each, ordinary records). Everything it prints and writes goes under one
# folder: $OUT/gpu when $OUT is set (the device machine copies $OUT back), else .benchmarks/gpu.
# Each step has its own time limit, and all of them together stay within --deadline seconds
# (540 = 9 minutes): a step that would start too late is skipped, not allowed to eat the window.
#
#   benchmarks/gpu.sh                        # CUDA: the whole check (about 9 minutes)
#   benchmarks/gpu.sh --device cpu --small   # the same path at tiny sizes on a CPU (~1 minute)
#
# Options: --out DIR; --data DIR (Fashion-MNIST .gz files; default .gpu-data/fashion-mnist,
# else /usr/share/datasets/fashion-mnist); --deadline S; --compile / --no-compile (default: on
# CUDA, off with --small: compiling takes minutes on a CPU). Environment: PYTHON (python3),
# SSLBENCH_SPRINT_BUDGET (pretraining seconds per sprint, 150), SSLBENCH_BENCH_* (harness.py).
# Wheels found in .whl/ (benchmarks/gpu_prep.sh) are installed first when pydantic or yaml is
# missing: the device machine has no network.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
PY=${PYTHON:-python3}
device=cuda small="" compile="" deadline=540 data="" out="${OUT:+$OUT/gpu}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --small) small=--small; shift ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --deadline) deadline=$2; shift 2 ;;
    --compile) compile=1; shift ;;
    --no-compile) compile=0; shift ;;
    *) echo "usage: benchmarks/gpu.sh [--device cuda|cpu] [--small] [--out DIR] [--data DIR]" \
            "[--deadline S] [--compile|--no-compile]" >&2; exit 2 ;;
  esac
done
out=${out:-.benchmarks/gpu}
[ -n "$compile" ] || { [ -n "$small" ] && compile=0 || compile=1; }
preset=gpu precision=bf16
[ -n "$small" ] && preset=smoke
[ "$device" = cuda ] || precision=auto  # CPUs without bf16 hardware only emulate it
mkdir -p "$out/results" "$out/runs"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sslbench-gpu.XXXXXX")  # data, checkpoints: not copied back
exec > >(tee -a "$out/gpu.log") 2>&1
start=$SECONDS status=0

step() {  # step NAME LIMIT COMMAND...: run with min(LIMIT, time left) seconds, never abort
  local name=$1 limit=$2 left rc
  shift 2
  left=$((deadline - (SECONDS - start)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    echo "== $name: skipped, ${left}s left of the ${deadline}s window"; status=1; return 0
  fi
  echo "== $name (limit ${limit}s, at ${SECONDS}s)"
  timeout --kill-after=10 "$limit" "$@"; rc=$?
  [ "$rc" = 124 ] && echo "== $name: timed out after ${limit}s"
  [ "$rc" != 0 ] && { echo "== $name: failed (exit $rc)"; status=1; }
  return 0
}

setup() {  # wheels the device lacks, this checkout on the path, the data decompressed
  if ! "$PY" -c 'import pydantic, yaml' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$work/site" .whl/*.whl || return 1
  fi
  local src=${data:-.gpu-data/fashion-mnist}
  [ -d "$src" ] || src=/usr/share/datasets/fashion-mnist
  mkdir -p "$work/data/FashionMNIST/raw"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
           t10k-labels-idx1-ubyte; do
    gunzip -c "$src/$f.gz" > "$work/data/FashionMNIST/raw/$f" || return 1
  done
}

export PYTHONPATH="$work/site:$root${PYTHONPATH:+:$PYTHONPATH}"
echo "sslbench GPU check: device=$device preset=$preset precision=$precision" \
     "compile=$compile deadline=${deadline}s out=$out"
[ "$device" = cuda ] && { nvidia-smi --query-gpu=name,memory.total,driver_version \
                            --format=csv,noheader || true; }
echo "== setup (at ${SECONDS}s)"
setup || { echo "== setup: failed (wheels or data missing: see benchmarks/gpu_prep.sh)"; status=1; }
"$PY" -c 'import torch, pydantic; print("torch", torch.__version__, "cuda", torch.version.cuda,
  torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device",
  "pydantic", pydantic.VERSION)' | tee "$out/environment.txt" || status=1

speed() {  # speed NAME LIMIT COMPILE METHODS [pytest -k]
  local json="$out/speed-$1.json"
  step "speed $1" "$2" env SSLBENCH_BENCH_PRESET=$preset SSLBENCH_BENCH_DEVICE=$device \
    SSLBENCH_BENCH_PRECISION=$precision SSLBENCH_BENCH_COMPILE=$3 SSLBENCH_BENCH_METHODS=$4 \
    "$PY" -m pytest -q -p no:cacheprovider -p no:sslbench benchmarks/test_speed.py ${5:+-k "$5"} \
    --benchmark-json="$json" --benchmark-disable-gc
  if [ -s "$json" ]; then
    "$PY" -m benchmarks.compare "$json" --preset "$preset-$device" --gpu-targets \
      | tee "$out/speed-$1.md" || status=1
  fi
}

sprint() {  # sprint METHOD: a fixed number of epochs, computed from a measured throughput
  local budget=${SSLBENCH_SPRINT_BUDGET:-150}
  [ -n "$small" ] && budget=${SSLBENCH_SPRINT_BUDGET:-2}
  step "sprint $1" $((budget + 90)) "$PY" -m benchmarks.sprint "$1" --device "$device" \
    --data-dir "$work/data" --results-dir "$out/results" --output-dir "$work/runs" \
    --out "$out" --budget "$budget" $small
}

speed eager 150 0 simsiam,simclr,byol
sprint simclr
sprint byol
if [ "$compile" = 1 ]; then
  for m in simsiam simclr byol; do speed "compile-$m" 150 1 "$m" test_training_step; done
fi

# the run folders' small files come back with the records (checkpoints stay behind)
for run in "$work"/runs/*/; do
  [ -d "$run" ] || continue
  mkdir -p "$out/runs/$(basename "$run")"
  find "$run" -maxdepth 1 -type f \( -name '*.csv' -o -name '*.json' -o -name '*.png' \) \
    -exec cp {} "$out/runs/$(basename "$run")/" \;
done
rm -rf "$work"
echo "== done in $((SECONDS - start))s, status $status; files in $out:"
(cd "$out" && find . -type f | sort)
exit $status
