#!/usr/bin/env bash
# Create or update the project's virtual environment with everything `make demo` and `make test` use:
# torch, the project with every extra (tests, LPIPS weights), splat-transform (npm, in .node/) when npm
# exists, and the compiled CPU rasterizer when a C++ compiler exists. Each step checks what is already
# there, so a second run only checks. A failing step prints `error: setup: <step>: <why>` and exits 1.
#
# Settings (environment or `make VAR=value`):
#   VENV=.venv              where the environment goes
#   PYTHON=python3          the interpreter that creates it (3.10 or newer)
#   TORCH=torch==2.13.0     the torch requirement
#   TORCH_BUILD=auto        auto | cpu | cuda; auto = cuda when `nvidia-smi -L` lists a GPU, else cpu
#   TORCH_INDEX_URL=        where torch comes from; default: PyTorch's CPU index for a cpu build on Linux
#                           when it answers (PyPI's Linux torch is a multi-GB CUDA build), else pip's index
#   NPM=auto                auto | no; auto installs splat-transform when npm exists
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-torch==2.13.0}"
TORCH_BUILD="${TORCH_BUILD:-auto}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-}"
NPM="${NPM:-auto}"
SPLAT_TRANSFORM="@playcanvas/splat-transform@3.7.0"
GLTF_VALIDATOR="gltf-validator@2.0.0-dev.3.10"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

step() { echo "setup: $*"; }
fail() { echo "error: setup: $*" >&2; exit 1; }

# 1. the virtual environment
command -v "$PYTHON" >/dev/null 2>&1 || fail "python: '$PYTHON' not found (set PYTHON=python3.11, say)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "python: $("$PYTHON" --version 2>&1) is too old; gspruner needs Python 3.10 or newer (set PYTHON=...)"
if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PYTHON" -m venv "$VENV" || fail "venv: '$PYTHON -m venv $VENV' failed (Debian: apt install python3-venv)"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

# 2. torch: a CUDA build where an NVIDIA GPU is, else the CPU build
case "$TORCH_BUILD" in
  auto) if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
          TORCH_BUILD=cuda; else TORCH_BUILD=cpu; fi ;;
  cpu|cuda) ;;
  *) fail "torch: TORCH_BUILD must be auto, cpu or cuda (got '$TORCH_BUILD')" ;;
esac
have_torch() {  # an installed torch of the wanted build; with TORCH=torch==V, that version
  "$PY" - "$TORCH" "$TORCH_BUILD" <<'EOF' >/dev/null 2>&1
import sys
import torch
want, build = sys.argv[1], sys.argv[2]
pinned = want.split("==", 1)[1].strip() if "==" in want else None
ok = pinned is None or torch.__version__.split("+")[0] == pinned
sys.exit(0 if ok and (build == "cpu" or torch.version.cuda is not None) else 1)
EOF
}
if have_torch; then
  step "torch: $("$PY" -c 'import torch; print(torch.__version__)') already installed ($TORCH_BUILD)"
else
  index=()
  if [ -n "$TORCH_INDEX_URL" ]; then
    index=(--index-url "$TORCH_INDEX_URL")
  elif [ "$TORCH_BUILD" = cpu ] && [ "$(uname -s)" = Linux ]; then
    if "$PY" -c "import urllib.request as u; u.urlopen('$CPU_INDEX/torch/', timeout=5)" >/dev/null 2>&1; then
      index=(--index-url "$CPU_INDEX")
    else
      step "torch: $CPU_INDEX does not answer; using pip's own index (on PyPI that is a CUDA build)"
    fi
  fi
  step "torch: installing $TORCH ($TORCH_BUILD build${index[*]:+, from ${index[1]}})"
  "${PIP[@]}" "$TORCH" "${index[@]}" || fail "torch: 'pip install $TORCH ${index[*]}' failed"
fi

# 3. the project, with every extra: tests and the LPIPS weights
step "gspruner: pip install -e '.[all]'"
"${PIP[@]}" -e '.[all]' || fail "gspruner: 'pip install -e .[all]' failed"

# 4. splat-transform and the Khronos glTF-Validator, the independent tools the export tests check our files with
if [ "$NPM" = no ]; then
  step "splat-transform, gltf-validator: skipped (NPM=no); the export interop tests will skip"
elif ! command -v npm >/dev/null 2>&1; then
  step "splat-transform, gltf-validator: npm not found; the export interop tests will skip"
elif [ -x .node/node_modules/.bin/splat-transform ] \
     && grep -q '"version": "3.7.0"' .node/node_modules/@playcanvas/splat-transform/package.json 2>/dev/null \
     && grep -q '"version": "2.0.0-dev.3.10"' .node/node_modules/gltf-validator/package.json 2>/dev/null; then
  step "splat-transform, gltf-validator: already in .node/"
else
  step "splat-transform, gltf-validator: npm install into .node/"
  npm install --prefix .node --no-audit --no-fund --loglevel=error "$SPLAT_TRANSFORM" "$GLTF_VALIDATOR" >/dev/null \
    || fail "npm: 'npm install --prefix .node $SPLAT_TRANSFORM $GLTF_VALIDATOR' failed (NPM=no skips it)"
fi

# 5. the compiled CPU rasterizer, built once (cached under ~/.cache/torch_extensions)
if command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1; then
  step "compiled CPU rasterizer: building or loading (about 30 s the first time)"
  "$PY" -c "from gspruner.render import compiled; import sys; sys.exit(compiled.extension() is None)" \
    || fail "compiled CPU rasterizer: the build failed (the message above says why)"
else
  step "compiled CPU rasterizer: no C++ compiler; training uses the ~5x slower PyTorch rasterizer"
fi

date -u +%FT%TZ > "$VENV/.gspruner-setup"
step "done: $VENV"
