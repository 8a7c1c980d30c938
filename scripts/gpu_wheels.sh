#!/usr/bin/env bash
# Download, here, the Python wheels that scripts/gpu_check.sh installs on a lent GPU machine (no network
# there; its image has Python 3.12, torch 2.11 + CUDA 13, numpy, opencv-python-headless, matplotlib, scipy,
# pillow, pyyaml, tqdm, rich, jaxtyping, ninja, imageio, requests, pytest, ... but not what is below).
# The wheels go into .whl/ (ignored by git); the device tool carries that folder: carry=[".whl"].
#
#   bash scripts/gpu_wheels.sh              # for Python 3.12 (GPU_PYTHON=3.11 for another)
#
# Versions are the ones this project is tested with on CPU. One version of each package: two would stop the
# install there.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_PYTHON="${GPU_PYTHON:-3.12}"
OUT="${WHEEL_DIR:-.whl}"
PY="${PYTHON:-python3}"

# name==version   (the packages gspruner needs that the GPU image lacks, and what they need in turn)
WHEELS=(
  gsplat==1.5.3            # the CUDA rasterizer (pure Python; its kernels JIT-compile there)
  nerfview==0.1.3          # the viewer
  viser==1.1.1
  msgspec==0.22.0          # viser's
  websockets==16.1.1       # viser's
  zstandard==0.25.0        # viser's, and our SPZ v4
  trimesh==5.2.0           # viser's
  tyro==1.0.17             # the command line
  docstring-parser==0.18.0 # tyro's
  typeguard==4.6.1         # tyro's
  plyfile==1.1.5           # PLY export
  splines==0.3.3           # nerfview's
)

fail() { echo "error: gpu_wheels: $*" >&2; exit 1; }
mkdir -p "$OUT"
for spec in "${WHEELS[@]}"; do
  name="${spec%%==*}"
  if ls "$OUT" 2>/dev/null | grep -qi "^$(echo "$name" | tr '-' '_')-${spec##*==}-"; then
    continue
  fi
  echo "gpu_wheels: $spec"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$GPU_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 \
    -d "$OUT" "$spec" || fail "pip download $spec failed"
done
# the manifest gpu_check.sh checks against
printf '%s\n' "${WHEELS[@]}" > "$OUT/MANIFEST"
echo "gpu_wheels: $(ls "$OUT"/*.whl | wc -l) wheels, $(du -sh "$OUT" | cut -f1) in $OUT (carry=[\"$OUT\"])"
