#!/usr/bin/env bash
# Download and unpack the Mip-NeRF 360 scenes (needs internet; ~12 GB) into DEST (default data/360_v2).
set -euo pipefail
DEST="${1:-data/360_v2}"
URL="http://storage.googleapis.com/gresearch/refraw360/360_v2.zip"
mkdir -p "$DEST"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading $URL"
curl -fL --retry 3 -o "$tmp/360_v2.zip" "$URL"
unzip -q "$tmp/360_v2.zip" -d "$DEST"
echo "scenes in $DEST: $(ls "$DEST" | tr '\n' ' ')"
