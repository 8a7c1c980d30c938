#!/usr/bin/env bash
# The CUDA path in one prepared run, for a lent GPU machine (no network there; about 8 minutes):
#   1. installs the carried wheels (.whl/, made here by scripts/gpu_wheels.sh) into /tmp/gspruner-site;
#   2. builds gsplat's CUDA extension for this GPU only (TORCH_CUDA_ARCH_LIST = its compute capability,
#      MAX_JOBS = all cores) and our statistics kernel (cuda/csrc/contribution_stats.cu);
#   3. runs `pytest -m cuda`: our CPU rasterizer against gsplat (forward and gradients), the statistics
#      kernel against the torch path;
#   4. trains the demo with strategy:default and strategy:fastgs on CUDA and, when SCENE is given, that scene
#      (--data-factor 4, --steps N, default 3000) with both;
#      and the demo once more through `torchrun --nproc_per_node 1` (the sharded path's smoke run; one GPU
#      cannot show scaling);
#   5. writes RESULTS/gpu_check.md (and .json): PSNR, Gaussians, seconds per 1k steps, peak GPU memory.
#
#   scripts/gpu_check.sh RESULTS [SCENE] [--steps N]      on the GPU machine, from the repository root
#   scripts/gpu_check.sh --dry-run RESULTS [SCENE]        here, without a GPU: checks that the carried wheels
#        install for the GPU's Python (a fresh --target folder, python$GPU_PYTHON) and that everything gspruner
#        and they need is carried or in the GPU image; then runs steps 3-5 on the CPU, 50 steps each
#
# Through the device tool: run(command="bash scripts/gpu_check.sh $OUT/gpu [scene]", carry=[".whl"]).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0; STEPS=3000; ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --steps) STEPS="${2:?--steps needs a number}"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "error: gpu_check: unknown option $1" >&2; exit 2 ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
[ ${#ARGS[@]} -ge 1 ] && [ ${#ARGS[@]} -le 2 ] || { echo "error: gpu_check: usage: gpu_check.sh [--dry-run] RESULTS [SCENE] [--steps N]" >&2; exit 2; }
RESULTS="${ARGS[0]}"
SCENE="${ARGS[1]:-}"
[ -z "$SCENE" ] || [ -d "$SCENE" ] || { echo "error: gpu_check: $SCENE: no such scene folder" >&2; exit 2; }
WHEELS="${WHEEL_DIR:-.whl}"
GPU_PYTHON="${GPU_PYTHON:-3.12}"
PY="${PYTHON:-python3}"
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
: > "$LOG"
T0=$(date +%s)
say() { echo "gpu_check [$(( $(date +%s) - T0 ))s]: $*" | tee -a "$LOG"; }
fail() { echo "error: gpu_check: $*" | tee -a "$LOG" >&2; exit 1; }

# -- 1. the carried wheels ---------------------------------------------------------------------------
[ -f "$WHEELS/MANIFEST" ] || fail "$WHEELS/MANIFEST missing: run scripts/gpu_wheels.sh here and carry $WHEELS"
if [ "$DRY" = 1 ]; then
  GPU_PY=""  # the GPU's Python version here: GPU_PYTHON_BIN, python3.12 on the PATH, or pyenv's
  for candidate in ${GPU_PYTHON_BIN:-} "python$GPU_PYTHON" $(pyenv root 2>/dev/null)/versions/"$GPU_PYTHON"*/bin/"python$GPU_PYTHON"; do
    if "$candidate" --version >/dev/null 2>&1; then GPU_PY="$candidate"; break; fi
  done
  [ -n "$GPU_PY" ] || fail "no Python $GPU_PYTHON here (set GPU_PYTHON_BIN): the dry run installs the wheels with the GPU's Python"
  SITE="$(mktemp -d)/site"
  say "installing $(ls "$WHEELS"/*.whl | wc -l) wheels with $GPU_PY into a fresh $SITE"
  "$GPU_PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl \
    >>"$LOG" 2>&1 || fail "the carried wheels do not install for Python $GPU_PYTHON (see $LOG)"
  say "checking that every requirement is carried or in the GPU image"
  "$PY" - "$WHEELS" pyproject.toml "$GPU_PYTHON" <<'EOF' 2>&1 | tee -a "$LOG"
import re, sys, zipfile, pathlib, tomllib
from packaging.requirements import Requirement
gpu_python = sys.argv[3]
# the GPU image's packages (device tool's KINDS.md, read 2026-11-17), the ones gspruner's tree can ask for
image = set("""absl-py aiofiles certifi charset-normalizer click contourpy cycler filelock fonttools fsspec idna
imageio jaxtyping jinja2 kiwisolver markdown-it-py markupsafe matplotlib mdurl ml-dtypes msgpack networkx ninja numpy
opencv-python-headless packaging pillow pluggy pygments pyparsing pytest python-dateutil pyyaml requests rich scipy
setuptools six sympy torch tqdm triton typing-extensions urllib3 wadler-lindig iniconfig lazy-loader""".split())
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
alias = {"opencv-python": "opencv-python-headless"}  # the same cv2
carried, needs = set(), {}
for whl in pathlib.Path(sys.argv[1]).glob("*.whl"):
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    name = norm(re.search(r"^Name: (.+)$", meta, re.M).group(1))
    carried.add(name)
    for line in re.findall(r"^Requires-Dist: (.+)$", meta, re.M):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"python_version": gpu_python, "extra": ""}):
            needs.setdefault(norm(req.name), set()).add(name)
project = tomllib.loads(pathlib.Path(sys.argv[2]).read_text())["project"]["dependencies"]
for req in project:
    needs.setdefault(norm(re.match(r"[A-Za-z0-9_.-]+", req).group(0)), set()).add("gspruner")
missing = {n: by for n, by in needs.items() if alias.get(n, n) not in carried | image}
for n, by in sorted(missing.items()):
    print(f"missing on the GPU machine: {n} (needed by {', '.join(sorted(by))})")
print(f"{len(carried)} carried, {len(needs)} requirements checked")
sys.exit(1 if missing else 0)
EOF
  [ "${PIPESTATUS[0]}" = 0 ] || fail "a requirement is neither carried nor in the GPU image (add it to scripts/gpu_wheels.sh)"
  DEVICE=cpu; STEPS=50; DEMO_STEPS=50
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  SITE=/tmp/gspruner-site
  say "installing the carried wheels into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
    >>"$LOG" 2>&1 || fail "pip install of the carried wheels failed (see $LOG)"
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  DEVICE=cuda; DEMO_STEPS=1000
fi
GS=("$PY" -m gspruner.cli)

# -- 2. the CUDA builds ------------------------------------------------------------------------------
if [ "$DEVICE" = cuda ]; then
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'" >>"$LOG" 2>&1 || fail "torch sees no GPU"
  ARCH=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
  export TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="$(nproc)"
  say "building gsplat's CUDA extension for sm_${ARCH/./} with $MAX_JOBS jobs"
  "$PY" -c "from gsplat.cuda._backend import _C; assert _C is not None, 'gsplat CUDA extension did not build'" \
    >>"$LOG" 2>&1 || fail "gsplat's CUDA build failed (see $LOG)"
  say "building the statistics kernel (cuda/csrc/contribution_stats.cu)"
  "$PY" -c "from gspruner.render import cuda_stats; assert cuda_stats.available()" >>"$LOG" 2>&1 \
    || fail "the statistics kernel did not build (see $LOG)"
fi

# -- 3. parity tests -----------------------------------------------------------------------------------
say "pytest -m cuda"
if "$PY" -m pytest -q -m cuda -p no:cacheprovider tests >"$RESULTS/pytest_cuda.txt" 2>&1; then
  PYTEST="$(tail -1 "$RESULTS/pytest_cuda.txt")"
else
  PYTEST="FAILED: $(tail -1 "$RESULTS/pytest_cuda.txt")"
fi
say "pytest -m cuda: $PYTEST"

# -- 4. training runs ----------------------------------------------------------------------------------
RUNS=()
train() {  # name, then gspruner train arguments
  local name="$1"; shift
  say "train $name: $*"
  RUNS+=("$name")
  "${GS[@]}" train --device "$DEVICE" --result-dir "$RESULTS/$name" --overwrite --no-progress "$@" \
    >"$RESULTS/$name.log" 2>&1 || say "train $name FAILED: $(tail -1 "$RESULTS/$name.log")"
}
train demo_default --max-steps "$DEMO_STEPS"
train demo_fastgs --max-steps "$DEMO_STEPS" strategy:fastgs
# the sharded path through torchrun (NCCL on the GPU, gloo in the dry run): one rank, a smoke run
say "train demo_torchrun1: torchrun --nproc_per_node 1"
RUNS+=("demo_torchrun1")
OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m gspruner.cli train --device "$DEVICE" \
  --result-dir "$RESULTS/demo_torchrun1" --overwrite --no-progress --max-steps "$DEMO_STEPS" \
  >"$RESULTS/demo_torchrun1.log" 2>&1 || say "train demo_torchrun1 FAILED: $(tail -1 "$RESULTS/demo_torchrun1.log")"
if [ -n "$SCENE" ]; then
  train scene_default --data-dir "$SCENE" --data-factor 4 --max-steps "$STEPS"
  train scene_fastgs --data-dir "$SCENE" --data-factor 4 --max-steps "$STEPS" strategy:fastgs
fi

# -- 5. the table --------------------------------------------------------------------------------------
"$PY" - "$RESULTS" "$PYTEST" "${RUNS[@]}" <<'EOF' | tee -a "$LOG"
import json, sys, pathlib, platform
results, pytest_line, runs = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
try:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
    env = f"torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}"
except Exception as exc:  # noqa: BLE001
    gpu, env = "?", repr(exc)
rows, lines = [], [f"# gpu_check: {gpu}", "", env, "", f"pytest -m cuda: {pytest_line}", "",
                   "| run | device | rasterizer | steps | test PSNR | Gaussians | s / 1k steps | peak GPU MB |",
                   "|---|---|---|---:|---:|---:|---:|---:|"]
for name in runs:
    f = results / name / "metrics.json"
    if not f.is_file():
        lines.append(f"| {name} | failed: see {name}.log | | | | | | |")
        rows.append({"run": name, "failed": True})
        continue
    m = json.loads(f.read_text())
    per_k = 1000 * m["train_seconds"] / max(m["steps"], 1)
    peak = m.get("peak_gpu_mb")
    lines.append(f"| {name} | {m['device']} | {m['rasterizer']} | {m['steps']} | {m['psnr']:.2f} | {m['num_gaussians']:,} "
                 f"| {per_k:.1f} | {'' if peak is None else f'{peak:.0f}'} |")
    rows.append({"run": name, **{k: m.get(k) for k in ("device", "rasterizer", "steps", "psnr", "num_gaussians",
                                                        "train_seconds", "peak_gpu_mb", "data_dir")}})
(results / "gpu_check.md").write_text("\n".join(lines) + "\n")
(results / "gpu_check.json").write_text(json.dumps({"gpu": gpu, "env": env, "pytest": pytest_line, "runs": rows}, indent=1))
print("\n".join(lines))
sys.exit(1 if any(r.get("failed") for r in rows) or pytest_line.startswith("FAILED") else 0)
EOF
status=${PIPESTATUS[0]}
say "done in $(( $(date +%s) - T0 )) s: $RESULTS/gpu_check.md"
exit "$status"
