#!/usr/bin/env bash
# Run on a development machine (with the registries) before a GPU window: gathers what the
# device machine lacks into two git-ignored folders that travel with the working tree.
#
#   .whl/        pydantic, pydantic_core, annotated_types, typing_inspection, typing_extensions,
#                pyyaml: CPython 3.12 manylinux x86_64 wheels, at the versions of this
#                environment (the device has Python 3.12 and torch, but no pydantic, maybe no
#                yaml, and no network)
#   .gpu-data/   fashion-mnist/*.gz: the original Fashion-MNIST IDX files (Debian's
#                dataset-fashion-mnist package), about 30 MB
#
# Then, in one device call: benchmarks/gpu.sh (see benchmarks/README.md, "GPU").
# Environment: PYTHON (python3) — the interpreter whose installed versions are pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LIMIT_MB=48  # the device carries 64 MiB at most, the rest of the tree included

# pydantic's Requires-Dist: annotated-types, pydantic-core, typing-extensions,
# typing-inspection; pydantic-core and typing-inspection need typing-extensions; pyyaml nothing.
packages="pydantic pydantic_core annotated_types typing_inspection typing_extensions pyyaml"
rm -rf .whl && mkdir -p .whl
for name in $packages; do
  version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$name==$version"
done
# every wheel's own Requires-Dist, to see that nothing outside the list is needed
"$PY" - <<'EOF'
import pathlib, zipfile
for wheel in sorted(pathlib.Path(".whl").glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        needs = [line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                 if line.startswith("Requires-Dist:") and "extra ==" not in line]
    print(f"{wheel.name}: requires {', '.join(needs) or 'nothing'}")
EOF

src=/usr/share/datasets/fashion-mnist
if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi
mkdir -p .gpu-data/fashion-mnist
cp "$src"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz .gpu-data/fashion-mnist/

total=$(du -scm .whl .gpu-data | tail -1 | cut -f1)
du -sh .whl .gpu-data
if [ "$total" -gt "$LIMIT_MB" ]; then
  echo "error: .whl and .gpu-data take ${total} MB, over the ${LIMIT_MB} MB kept for them" >&2
  exit 1
fi
echo "ready: ${total} MB to carry (.whl, .gpu-data)"
