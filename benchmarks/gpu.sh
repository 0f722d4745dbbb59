#!/usr/bin/env bash
# The speed suite at CIFAR-10 scale on a CUDA machine, eager and with torch.compile; prints a
# table per mode. SimSiam and SimCLR x ResNet-18, batch 512, 32x32, bf16, channels_last.
# About 5-8 minutes on an H100/H200 (compilation is most of it). Results: .benchmarks/gpu/.
#
#   benchmarks/gpu.sh                       # CUDA, CIFAR-10 scale
#   benchmarks/gpu.sh --device cpu --small  # the same script path, tiny sizes, on a CPU
#
# Environment: PYTHON (default python), SSLBENCH_BENCH_* to override one size (harness.py).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
device=cuda preset=gpu eager_limit=240 compile_limit=300
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --small) preset=smoke eager_limit=240 compile_limit=400; shift ;;
    *) echo "usage: benchmarks/gpu.sh [--device cuda|cpu] [--small]" >&2; exit 2 ;;
  esac
done
out=.benchmarks/gpu
mkdir -p "$out"
if [ "$device" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")'

status=0
for compile in 0 1; do
  limit=$eager_limit; select=""
  if [ "$compile" = 1 ]; then limit=$compile_limit; select="-k test_training_step"; fi
  json="$out/$preset-$device-compile$compile.json"
  echo "== $preset sizes on $device, compile=$compile (limit ${limit}s) =="
  # shellcheck disable=SC2086
  SSLBENCH_BENCH_PRESET=$preset SSLBENCH_BENCH_DEVICE=$device SSLBENCH_BENCH_COMPILE=$compile \
    timeout "$limit" "$PY" -m pytest -q -p no:cacheprovider benchmarks/test_speed.py $select \
    --benchmark-json="$json" --benchmark-disable-gc || { echo "compile=$compile: failed or timed out"; status=1; }
  if [ -s "$json" ]; then
    "$PY" -m benchmarks.compare "$json" --preset "$preset-$device" || status=1
  fi
done
exit $status
