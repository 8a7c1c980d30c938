#!/usr/bin/env bash
# gspruner against OpenSplat (https://github.com/WebODM/OpenSplat, AGPL-3.0, run as an external program and
# never copied into this repository) on one COLMAP scene, on the CPU: the same training views, resolution and
# step counts, both PLYs evaluated by `gspruner eval` on the same held-out views (every 8th image by name).
#
#   bash scripts/bench_opensplat.sh OUT [SCENE]
#   STEPS="20" THREADS=2 JOBS=1 bash scripts/bench_opensplat.sh /tmp/os-smoke       # a smoke run
#
# SCENE: images/ + sparse/0 (default OUT/scene, made by `gspruner process` from FOX, the fox photos).
# Writes OUT/opensplat_scene/ (the training views alone, for OpenSplat), OUT/gspruner_N/ and OUT/opensplat_N/
# per step count N (log, /usr/bin/time -v, eval.json), OUT/results.json and a table; the last line of
# stdout: `gspruner S1 s/step P1 dB; opensplat S2 s/step P2 dB` for the largest N. Runs whose eval.json
# exists are kept (RERUN=1: train again). The trainers run one after the other, never together.
#
# OpenSplat is built once into CACHE (default ${XDG_CACHE_HOME:-~/.cache}/gspruner/opensplat): its source
# from OPENSPLAT_GIT (a git directory holding the tag) or else a shallow clone of OPENSPLAT_URL, then
# cmake -DGPU_RUNTIME=CPU against the libtorch of the installed torch (needs cmake, a C++20 compiler and
# OpenCV: apt-get install libopencv-dev). Other settings: FACTOR (8), JOBS (build jobs, nproc),
# PYTHON (python), GSPRUNER (gspruner), GSPRUNER_ARGS / OPENSPLAT_ARGS (extra flags for either trainer).
set -euo pipefail
OUT="${1:?usage: bash scripts/bench_opensplat.sh OUT [SCENE]}"
SCENE="${2:-$OUT/scene}"
HERE="$(cd "$(dirname "$0")" && pwd)"
STEPS="${STEPS:-2000 7000}"
FACTOR="${FACTOR:-8}"
TEST_EVERY=8                                   # gspruner's default split; OpenSplat gets the rest only
PYTHON="${PYTHON:-python}"
GSPRUNER="${GSPRUNER:-gspruner}"
FOX="${FOX:-$HERE/../../shared/data/fox/images}"
VERSION="${OPENSPLAT_VERSION:-v1.2.0}"
OPENSPLAT_URL="${OPENSPLAT_URL:-https://github.com/WebODM/OpenSplat}"
CACHE="${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gspruner/opensplat}"
SRC="$CACHE/src-$VERSION"
BUILD="$CACHE/build-$VERSION-cpu"
BIN="$BUILD/opensplat"
if [ -n "${THREADS:-}" ]; then                 # both trainers' thread pools (torch, OpenMP, our rasterizer)
    export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" GSPRUNER_CPU_THREADS="$THREADS"
fi
helper() { "$PYTHON" "$HERE/bench/opensplat.py" "$@"; }

step() {  # LOG CMD...: print the command, run it with its output in LOG; on failure name it and show the error
    local log="$1"; shift
    echo "+ $*" >&2
    if ! "$@" >"$log" 2>&1; then
        echo "error: this command failed (see $log):" >&2
        echo "  $*" >&2
        grep -i -m 10 -A 4 -E 'error|fatal|not found|no such' "$log" >&2 || tail -n 30 "$log" >&2
        exit 1
    fi
}

build_opensplat() {
    if [ -x "$BIN" ]; then echo "OpenSplat: $BIN (built earlier)" >&2; return; fi
    mkdir -p "$CACHE"
    if [ ! -f "$SRC/CMakeLists.txt" ]; then
        rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
        if [ -n "${OPENSPLAT_GIT:-}" ]; then
            step "$CACHE/source.log" bash -c "git --git-dir='$OPENSPLAT_GIT' archive '$VERSION' | tar -x -C '$SRC.tmp'"
        else
            step "$CACHE/source.log" git clone --depth 1 --branch "$VERSION" "$OPENSPLAT_URL" "$SRC.tmp"
        fi
        mv "$SRC.tmp" "$SRC"
    fi
    local torch_cmake
    torch_cmake="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')" || {
        echo "error: this command failed: $PYTHON -c 'import torch; ...' (OpenSplat builds on its libtorch)" >&2
        exit 1; }
    local start=$SECONDS
    step "$CACHE/configure.log" cmake -S "$SRC" -B "$BUILD" -DGPU_RUNTIME=CPU -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$torch_cmake"
    step "$CACHE/build.log" cmake --build "$BUILD" -j "${JOBS:-$(nproc)}"
    [ -x "$BIN" ] || { echo "error: the build finished without $BIN" >&2; exit 1; }
    echo "OpenSplat: built $BIN in $((SECONDS - start)) s" >&2
}

evaluate() {  # PLY JSON: gspruner's metrics of a PLY on the scene's held-out views
    echo "+ $GSPRUNER eval --ply $1 --data-dir $SCENE --data-factor $FACTOR --test-every $TEST_EVERY" >&2
    "$GSPRUNER" eval --ply "$1" --data-dir "$SCENE" --data-factor "$FACTOR" --test-every "$TEST_EVERY" \
        >"$2" 2>"$2.log" || { echo "error: the eval of $1 failed:" >&2; tail -n 5 "$2.log" >&2; exit 1; }
}

stamp() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }  # time each line

build_opensplat
mkdir -p "$OUT"
if [ ! -d "$SCENE/sparse" ]; then
    [ "$SCENE" = "$OUT/scene" ] || { echo "error: $SCENE: no sparse/ (a COLMAP scene: images/ + sparse/0)" >&2; exit 1; }
    step "$OUT/process.log" "$GSPRUNER" process "$FOX" --out "$SCENE"
fi
step "$OUT/split.log" helper split "$SCENE" "$OUT/opensplat_scene" --test-every "$TEST_EVERY"
cat "$OUT/split.log" >&2

for n in $STEPS; do
    g="$OUT/gspruner_$n" o="$OUT/opensplat_$n"
    if [ -n "${RERUN:-}" ] || [ ! -f "$g/eval.json" ]; then
        rm -rf "$g" && mkdir -p "$g"
        # shellcheck disable=SC2086  # GSPRUNER_ARGS holds several flags
        step "$g/log.txt" /usr/bin/time -v -o "$g/time.txt" "$GSPRUNER" train --data-dir "$SCENE" \
            --data-factor "$FACTOR" --test-every "$TEST_EVERY" --max-steps "$n" --result-dir "$g/run" \
            --no-lpips --no-save-renders --no-progress ${GSPRUNER_ARGS:-}
        evaluate "$g/run/point_cloud.ply" "$g/eval.json"
    fi
    if [ -n "${RERUN:-}" ] || [ ! -f "$o/eval.json" ]; then
        rm -rf "$o" && mkdir -p "$o"
        echo "+ $BIN $OUT/opensplat_scene -o $o/splat.ply -n $n -d $FACTOR --cpu ${OPENSPLAT_ARGS:-}" >&2
        # shellcheck disable=SC2086
        /usr/bin/time -v -o "$o/time.txt" "$BIN" "$OUT/opensplat_scene" -o "$o/splat.ply" -n "$n" \
            -d "$FACTOR" --cpu ${OPENSPLAT_ARGS:-} 2>&1 | stamp >"$o/log.txt" \
            || { echo "error: OpenSplat failed, see $o/log.txt:" >&2; tail -n 5 "$o/log.txt" >&2; exit 1; }
        # OpenSplat's PLY is in the COLMAP world; gspruner evaluates in its normalized one
        step "$o/frame.log" helper to-scene-frame "$SCENE" "$o/splat.ply" "$o/splat_gspruner_world.ply" \
            --data-factor "$FACTOR"
        cat "$o/frame.log" >&2
        evaluate "$o/splat_gspruner_world.ply" "$o/eval.json"
    fi
done

helper report "$OUT" $STEPS --meta "scene=$SCENE" --meta "data_factor=$FACTOR" --meta "test_every=$TEST_EVERY" \
    --meta "opensplat=$VERSION ($("$BIN" --version 2>/dev/null | head -n 1), $BIN, GPU_RUNTIME=CPU)" \
    --meta "threads=${THREADS:-default}" --meta "command=bash scripts/bench_opensplat.sh $OUT $SCENE (STEPS=$STEPS)"
