#!/usr/bin/env bash
# The Mip-NeRF 360 protocol on CUDA: 9 scenes, --data-factor 4 for the outdoor scenes (bicycle, flowers,
# garden, stump, treehill) and 2 for the indoor ones (room, counter, kitchen, bonsai), every 8th image for
# test, 30k steps; then OUT/report.md averages over the scenes, with the published numbers beside ours.
#
#   bash scripts/mipnerf360.sh [DATA (default data/360_v2)] [OUT (default results/mipnerf360)]
#   METHODS=default,mcmc STEPS=7000 bash scripts/mipnerf360.sh       # other methods / a shorter schedule
#
# Resumable: finished methods are skipped on a second call (EXTRA="--rerun" re-runs them); get the data with
# scripts/download_mipnerf360.sh. Any other `scripts/benchmark.py methods` flag can go in EXTRA.
set -euo pipefail
DATA="${1:-data/360_v2}"
OUT="${2:-results/mipnerf360}"
METHODS="${METHODS:-default,mcmc,fastgs,default+lightgaussian,default+lp3dgs,fastgs+lp3dgs}"
STEPS="${STEPS:-30000}"
DEVICE="${DEVICE:-cuda}"
EXTRA="${EXTRA:-}"
OUTDOOR=(bicycle flowers garden stump treehill)
INDOOR=(room counter kitchen bonsai)

dirs() {  # the scene folders that exist, warning about the missing ones
    local s
    for s in "$@"; do
        if [ -d "$DATA/$s" ]; then echo "$DATA/$s"; else echo "warning: $DATA/$s missing, skipped" >&2; fi
    done
}

run_group() {  # factor scene...
    local factor="$1"; shift
    mapfile -t found < <(dirs "$@")
    [ "${#found[@]}" -gt 0 ] || return 0
    # shellcheck disable=SC2086  # EXTRA holds several flags
    python scripts/benchmark.py methods --data-dir "${found[@]}" --data-factor "$factor" --test-every 8 \
        --max-steps "$STEPS" --methods "$METHODS" --device "$DEVICE" --out "$OUT" --published mipnerf360 $EXTRA
}

run_group 4 "${OUTDOOR[@]}"
run_group 2 "${INDOOR[@]}"
# the aggregate over every scene folder under OUT (rewritten after each group; this is the final one)
python scripts/benchmark.py methods --out "$OUT" --report-only --published mipnerf360
echo "report: $OUT/report.md"
