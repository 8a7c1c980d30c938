"""PlayCanvas SOG (`.sog`, "Spatially Ordered Gaussians", meta.json version 2), written and read.

Container (@playcanvas/splat-transform 3.7.0 `write-sog.ts` / `read-sog.ts`): a zip archive (stored
entries; a reader also takes deflated ones) of lossless RGBA WebP images plus `meta.json`:
    means_l.webp, means_u.webp   low / high byte of a 16-bit position per axis (R G B = x y z, A = 255)
    quats.webp                   smallest three: R G B = the three other components of the unit quaternion
                                 (sign chosen so the largest is positive) as 255·(√2·c·0.5 + 0.5), A = 252 + the
                                 index (w x y z = 0 1 2 3) of the largest |component|, which is recomputed
    scales.webp                  R G B = indices into the 256-entry `scales.codebook` of log scales, A = 255
    sh0.webp                     R G B = indices into the 256-entry `sh0.codebook` of f_dc, A = sigmoid(opacity)·255
    shN_labels.webp              (SH degree ≥ 1) R | G<<8 = the splat's entry in the SH palette, B = 0, A = 255
    shN_centroids.webp           (SH degree ≥ 1) the palette: 64 entries per row, each `coeffs` = (d+1)²-1 texels
                                 wide (texel j: R G B = the codebook indices of coefficient j of each colour
                                 channel), indices into the 256-entry `shN.codebook`
    meta.json                    {"version": 2, "asset": {...}, "count": N,
                                  "means": {"mins": [3], "maxs": [3], "files": [means_l, means_u]},
                                  "scales": {"codebook": [256], "files": [...]}, "quats": {"files": [...]},
                                  "sh0": {"codebook": [256], "files": [...]},
                                  "shN": {"count": palette size, "bands": d, "codebook": [256], "files":
                                          [shN_centroids, shN_labels]}}   (shN only for degree ≥ 1)
Splat i is texel i (row-major) of every per-splat image, of width ceil(√N/4)·4 and height
ceil(N/width/4)·4; the padding texels are zero. Splats are written in Morton (Z-curve) order of their
positions: 10 bits per axis over the bounding box, stable, buckets of more than 256 splats with one code
re-sorted over their own box (the reference's `sortMortonStrided`). The reader returns file order.

Encodings: positions pass through l(x) = sign(x)·ln(1+|x|) and are stored as round(65535·(l - min)/(max - min))
per axis, with min/max (of l) in meta.json. The 256-entry codebooks are the reference's optimal 1-D
quantizer (`quantize-1d-core.ts`): the pooled values of all columns in ≤ 1024 histogram bins placed by a
blend of rank and value (more rank where the tails are long), bin weights count^0.5, then the 256
centroids of least weighted squared error by dynamic programming; each value takes its nearest entry.
The SH palette is k-means over the ((d+1)²-1)·3 SH values of each splat, with min(64, 2^⌊log2(N/1024)⌋)·1024
entries (512 for 600 splats, 32768 for 50k; every splat its own entry when N ≤ the palette), then its
coefficients pooled into one 256-entry codebook.

Coordinates: the same axes as the PLY (splat-transform bakes its PLY transform, the identity, before
writing and reads SOG as PLY space), so nothing is converted.

Decoders (the reference reader, which `read_sog` follows): position l = min + (max - min)·v/65535 (a zero
range reads as min), x = sign(l)·(e^|l| - 1); rotation components (b/255·2 - 1)/√2, the largest √(1 - Σ),
an alpha outside 252-255 reads as the identity; opacity logit(clamp(a/255, 1e-6, 1 - 1e-6)) (bytes 0 and 255:
∓13.8); scales, f_dc and SH codebook[index] (codebooks as float32); an SH label ≥ shN.count reads as zero SH.
`read_sog` decodes splat-transform's files exactly as it does (its .sog -> .ply: max difference 0).

Quantization error of a round trip: position ≤ (1+|x|)·(e^(Δ/2) - 1) ≈ (1+|x|)·Δ/2 with Δ = (max - min)/65535
of l per axis (4.6e-5 for a scene of ±20 units near x = 0, 1e-3 at x = 20); rotation ≤ 1/(255·√2) = 0.0028 per
stored component of the unit quaternion (up to sign), ≤ 3× that (+ second order) on the recomputed largest;
sigmoid(opacity) ≤ 0.5/255; log scale and f_dc: the distance to the nearest of 256 codebook entries, at most
half the gap between neighbouring entries (≈ range/512 for evenly spread values; finer where values are
dense); SH: the distance to the splat's palette entry (zero when N ≤ palette size) plus the nearest of 256
codebook entries per coefficient.

Our own code (numpy/torch), following the reference's encodings; same Morton order as splat-transform.
Differences: positions, rotations and opacity are rounded to the nearest level (the reference truncates,
up to a whole step of error; the decoder is the same); the SH k-means is deterministic for a `seed` (the
reference seeds and re-seeds empty clusters with Math.random), assigns by exact brute-force nearest
centroid in chunks (the reference: a kd-tree on CPU, flash-kmeans on GPU) and stops once converged
(58k splats SH3, 32768 entries: ~1 s a round on 2 cores, ~10 s a file; 290k × 65,536: 15 s a round); the 1-D DP uses Knuth's bound
(same optimum, ~30× faster); codebook entries are written as the shortest decimals of their float32 values
(the reference: 17 digits; 8.9 vs 15.5 kB of meta.json at SH3); `shN.count` is the palette size actually used
(the reference writes the nominal size even when it has fewer entries). `palette_size` overrides the
reference's rule. A meta.json `model` other than "default" (antialiased, 2dgs) is read as ordinary splats,
with a warning. Not written: the unbundled form (meta.json beside its images; read) and streamed SOG
(lod-meta.json). The images are capped at 16383 texels a side (WebP): ~268M splats.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from PIL import Image, UnidentifiedImageError

from gspruner.errors import InputError
from gspruner.export.formats import atomic_write, prepare_splats, read_file_bytes, sigmoid, to_splat_dict

__all__ = ["write_sog", "read_sog", "sog_texture_size", "sog_palette_size", "morton_order", "quantize_1d", "kmeans",
           "sh_points", "sh_rows"]

PROGRESS_WORK = 2_000_000_000  # splats × palette entries above which k-means shows a progress bar

SOG_VERSION = 2
CODEBOOK_SIZE = 256
PALETTE_ROW = 64  # palette entries per row of shN_centroids.webp
MAX_PALETTE = 65536  # 16-bit labels
MAX_TEXTURE_SIZE = 16383  # WebP's limit per side
SH_COEFFS = (0, 3, 8, 15)  # coefficients per colour channel for SH degree 0..3
QUAT_TAG = 252  # quats.webp alpha = QUAT_TAG + index of the largest component
OPACITY_CLAMP = 1e-6  # the reference decoder's clamp of sigmoid(opacity) before the logit
GENERATOR = "gspruner"

FILES = {
    "means": ["means_l.webp", "means_u.webp"],
    "scales": ["scales.webp"],
    "quats": ["quats.webp"],
    "sh0": ["sh0.webp"],
    "shN": ["shN_centroids.webp", "shN_labels.webp"],
}

_SQRT2 = math.sqrt(2.0)
# the three components stored for each index of the largest one (w x y z = 0 1 2 3)
_STORED_COMPONENTS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


# ----------------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------------


def sog_texture_size(n: int) -> tuple[int, int]:
    """(width, height) of the per-splat images for n splats: multiples of 4, about square."""
    width = math.ceil(math.sqrt(n) / 4) * 4
    height = math.ceil(n / width / 4) * 4
    return width, height


def sog_palette_size(n: int) -> int:
    """The reference's SH palette size for n splats: min(64, 2^⌊log2(n/1024)⌋)·1024 (≤ n, a power of two)."""
    return int(min(64.0, 2.0 ** math.floor(math.log2(n / 1024))) * 1024)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """10-bit integers with two zero bits inserted after each bit (Morton encoding of one axis)."""
    v = v.astype(np.uint32) & np.uint32(0x3FF)
    v = (v ^ (v << np.uint32(16))) & np.uint32(0xFF0000FF)
    v = (v ^ (v << np.uint32(8))) & np.uint32(0x0300F00F)
    v = (v ^ (v << np.uint32(4))) & np.uint32(0x030C30C3)
    v = (v ^ (v << np.uint32(2))) & np.uint32(0x09249249)
    return v


def _morton_sort(positions: np.ndarray, order: np.ndarray) -> np.ndarray:
    """`order` (indices into positions) stably sorted by 30-bit Morton code over their own bounding box,
    equal-code runs of more than 256 re-sorted recursively."""
    p = positions[order]
    lo, hi = p.min(axis=0), p.max(axis=0)
    extent = hi - lo
    if not np.isfinite(extent).all() or not extent.any():
        return order
    scale = np.where(extent > 0, 1024.0 / np.where(extent > 0, extent, 1.0), 0.0)
    cells = np.minimum(1023.0, (p - lo) * scale).astype(np.uint32)  # truncation, as `>>> 0`
    codes = (_spread_bits(cells[:, 2]) << np.uint32(2)) + (_spread_bits(cells[:, 1]) << np.uint32(1)) + _spread_bits(cells[:, 0])
    by_code = np.argsort(codes, kind="stable")
    order, codes = order[by_code], codes[by_code]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    for start, end in zip(starts, ends):
        if end - start > 256:
            order[start:end] = _morton_sort(positions, order[start:end])
    return order


def morton_order(means: np.ndarray) -> np.ndarray:
    """The permutation putting splats in the reference's Morton order (computed on float32 positions)."""
    positions = np.asarray(means, dtype=np.float32).astype(np.float64)
    return _morton_sort(positions, np.arange(len(positions)))


# ----------------------------------------------------------------------------------------------------
# Quantizers
# ----------------------------------------------------------------------------------------------------


def _optimal_splits(cost: np.ndarray, num_groups: int) -> list[np.ndarray]:
    """Least-cost partition of bins 0..H-1 into contiguous groups, by dynamic programming: cost[a, b] is the
    cost of the group a..b (inf for a > b). Returns splits[m-1][j] = the last bin of the first m groups
    in the best partition of bins 0..j into m+1 groups (m = 1..num_groups-1), for backtracking.

    1-D least-squares costs are Monge, so the best last split never moves left when a group is added
    (Knuth's bound): the search for bin j starts at the previous round's split of j. Leftmost minimum on
    ties. Same partition cost as the reference's full O(K·H²) search, at a small fraction of the work."""
    num_bins = len(cost)
    bins = np.arange(num_bins)
    best = cost[0].copy()  # best[j]: least cost of bins 0..j in m groups
    lower = np.zeros(num_bins, dtype=np.int64)
    splits = []
    for m in range(1, num_groups):
        first = np.maximum(lower, m - 1)  # candidate splits s = first..j-1 (best[s] is finite from m-1)
        counts = np.maximum(bins - first, 0)
        starts = np.cumsum(counts) - counts
        owner = np.repeat(bins, counts)
        s = np.arange(counts.sum()) - np.repeat(starts, counts) + np.repeat(first, counts)
        totals = best[s] + cost[s + 1, owner]
        has = counts > 0
        minima = np.minimum.reduceat(totals, starts[has]) if has.any() else np.empty(0)
        hits = np.flatnonzero(totals == np.repeat(minima, counts[has]))
        leftmost = hits[np.r_[True, owner[hits][1:] != owner[hits][:-1]]] if len(hits) else hits
        split = first.copy()
        split[owner[leftmost]] = s[leftmost]
        best = np.full(num_bins, np.inf)
        best[has] = minima
        splits.append(split)
        lower = split
    return splits


def _optimal_centroids(sorted_values: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """Up to k ascending centroids of sorted, not all equal, finite values: histogram + DP (see docstring)."""
    n = len(sorted_values)
    v = sorted_values.astype(np.float64)
    v_min, v_range = v[0], v[-1] - v[0]
    num_bins = min(1024, n)
    iqr = v[int(n * 0.75)] - v[int(n * 0.25)]
    beta = max(0.5, min(0.999, 1.0 - iqr / v_range))
    position = beta * (np.arange(n) / n) + (1.0 - beta) * (v - v_min) / v_range
    bins = np.minimum(num_bins - 1, np.floor(num_bins * position)).astype(np.int64)
    counts = np.bincount(bins, minlength=num_bins).astype(np.float64)
    sums = np.bincount(bins, weights=v, minlength=num_bins)
    empty_centres = v_min + (np.arange(num_bins) + 0.5) / num_bins * v_range
    centres = np.where(counts > 0, sums / np.maximum(counts, 1.0), empty_centres)
    weights = np.where(counts > 0, counts**alpha, 0.0)

    w = np.r_[0.0, np.cumsum(weights)]
    wx = np.r_[0.0, np.cumsum(weights * centres)]
    wxx = np.r_[0.0, np.cumsum(weights * centres**2)]
    first, last = np.meshgrid(np.arange(num_bins), np.arange(num_bins), indexing="ij")  # bins first..last
    with np.errstate(divide="ignore", invalid="ignore"):
        sw = w[last + 1] - w[first]
        swx = wx[last + 1] - wx[first]
        cost = np.where(sw > 0, (wxx[last + 1] - wxx[first]) - swx**2 / sw, 0.0)
    cost[first > last] = np.inf

    num_centroids = min(k, int((counts > 0).sum()))
    splits = _optimal_splits(cost, num_centroids)
    centroids = np.empty(num_centroids)
    j = num_bins - 1
    for m in range(num_centroids - 1, -1, -1):  # backtrack: group m is bins s+1..j, its weighted mean
        s = int(splits[m - 1][j]) if m > 0 else -1
        weight = w[j + 1] - w[s + 1]
        centroids[m] = (wx[j + 1] - wx[s + 1]) / weight if weight > 0 else 0.5 * (centres[s + 1] + centres[j])
        j = s
    return np.sort(centroids.astype(np.float32))


def quantize_1d(values: np.ndarray, k: int = CODEBOOK_SIZE, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A k-entry codebook (float32, ascending, padded with its last entry) for the pooled finite values,
    and each value's nearest entry (uint8 when k ≤ 256, same shape as values)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    sorted_values = np.sort(flat)
    codebook = np.full(k, sorted_values[0], dtype=np.float32)
    if sorted_values[-1] - sorted_values[0] < 1e-20:
        return codebook, np.zeros(np.shape(values), dtype=np.uint8 if k <= 256 else np.int64)
    centroids = _optimal_centroids(sorted_values, k, alpha)
    codebook[: len(centroids)] = centroids
    codebook[len(centroids) :] = centroids[-1]
    midpoints = 0.5 * (codebook[:-1].astype(np.float64) + codebook[1:])
    labels = np.searchsorted(midpoints, flat.astype(np.float64), side="right")
    return codebook, labels.astype(np.uint8 if k <= 256 else np.int64).reshape(np.shape(values))


def _nearest_centroid(points: torch.Tensor, centroids: torch.Tensor, rows: int = 512, cols: int = 2048) -> torch.Tensor:
    """Index of each point's nearest centroid (squared Euclidean, |c|² - 2 x·c): blocks of `rows` points ×
    `cols` centroids into one reused, cache-sized buffer, a running minimum over the centroid blocks (the
    first index on ties, as argmin). Matmul-bound: 60k points × 65,536 centroids × 45 in 2.9 s on 2 cores,
    1.5× faster than one full row of distances at a time."""
    sq_norms = (centroids.double() ** 2).sum(dim=1).float()
    centroids_t = centroids.T.contiguous()
    labels = torch.empty(len(points), dtype=torch.int64)
    buffer = torch.empty(rows, min(cols, len(centroids)))
    for start in range(0, len(points), rows):
        chunk = points[start : start + rows]
        best = torch.full((len(chunk),), float("inf"))
        best_index = torch.zeros(len(chunk), dtype=torch.int64)
        for c0 in range(0, len(centroids), cols):
            c1 = min(c0 + cols, len(centroids))
            distance = buffer[: len(chunk), : c1 - c0]
            torch.addmm(sq_norms[c0:c1], chunk, centroids_t[:, c0:c1], alpha=-2.0, out=distance)
            value, index = distance.min(dim=1)
            closer = value < best
            best = torch.where(closer, value, best)
            best_index = torch.where(closer, index + c0, best_index)
        labels[start : start + rows] = best_index
    return labels


def kmeans(points: np.ndarray, k: int, iterations: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means: (centroids [min(k, N), D] float32, labels [N] int64). Seeded by k distinct random
    points, then up to `iterations` rounds of assign + mean; an emptied cluster is re-seeded at a random
    point. Stops early once a round changes no label and empties no cluster (the later rounds would repeat
    it). With N ≤ k every point is its own centroid. Deterministic for a seed."""
    n = len(points)
    if n <= k:
        return np.array(points, dtype=np.float32), np.arange(n)
    distinct, inverse = np.unique(np.asarray(points, dtype=np.float32), axis=0, return_inverse=True)
    if len(distinct) <= k:  # already a palette (e.g. `gspruner quantize-sh`'s model): it is its own answer
        return distinct, inverse.reshape(-1).astype(np.int64)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    x64 = x.double()
    centroids = x[torch.from_numpy(rng.choice(n, size=k, replace=False))].clone()
    labels = None
    # minutes on a CPU for large scenes (290k splats × 65,536 entries: 15 s a round): show progress then
    rounds = tqdm(range(iterations), desc=f"SOG SH palette: k-means, {n} splats → {k}", unit="round",
                  disable=n * k < PROGRESS_WORK, leave=False)  # fmt: skip
    for _ in rounds:
        previous, labels = labels, _nearest_centroid(x, centroids)
        counts = torch.bincount(labels, minlength=k)
        empty = torch.nonzero(counts == 0).flatten()
        if previous is not None and not len(empty) and torch.equal(previous, labels):
            break
        sums = torch.zeros(k, x.shape[1], dtype=torch.float64).index_add_(0, labels, x64)
        centroids = (sums / counts.clamp(min=1)[:, None]).float()
        if len(empty):
            centroids[empty] = x[torch.from_numpy(rng.integers(0, n, size=len(empty)))]
    return centroids.numpy(), labels.numpy()


# ----------------------------------------------------------------------------------------------------
# Encoders and decoders of each attribute
# ----------------------------------------------------------------------------------------------------


def log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def inverse_log_transform(l: np.ndarray) -> np.ndarray:
    return np.sign(l) * np.expm1(np.abs(l))


def _encode_means(means: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """16-bit grid values [N,3] of log-transformed positions, and the per-axis mins/maxs of the transform."""
    lo, hi = log_transform(means.min(axis=0)), log_transform(means.max(axis=0))
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.where(span > 0, 65535.0 * (log_transform(means) - lo) / span, 0.0)
    grid = np.clip(np.rint(grid), 0, 65535).astype(np.uint16)
    return grid, lo.tolist(), hi.tolist()


def _decode_means(grid: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    span = maxs - mins
    span = np.where(span != 0, span, 1.0)  # the reference's `(max - min) || 1`
    return inverse_log_transform(mins + span * (grid.astype(np.float64) / 65535.0))


def _encode_quats(quats: np.ndarray) -> np.ndarray:
    """Smallest-three bytes [N,4]: three components as 255·(√2·c·0.5 + 0.5) and QUAT_TAG + largest index."""
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    rows = np.arange(len(q))
    largest = np.argmax(np.abs(q), axis=1)  # first of equal magnitudes, as the reference
    q = q * np.where(q[rows, largest] < 0, -_SQRT2, _SQRT2)[:, None]
    stored = q[rows[:, None], _STORED_COMPONENTS[largest]]  # [N,3] in [-1, 1]
    packed = np.empty((len(q), 4), dtype=np.uint8)
    packed[:, :3] = np.clip(np.rint(255.0 * (stored * 0.5 + 0.5)), 0, 255)
    packed[:, 3] = QUAT_TAG + largest
    return packed


def _decode_quats(packed: np.ndarray) -> np.ndarray:
    """wxyz quaternions from smallest-three bytes; an unknown tag reads as the identity (the reference)."""
    n = len(packed)
    rows = np.arange(n)
    tag = packed[:, 3].astype(np.int64) - QUAT_TAG
    valid = (tag >= 0) & (tag <= 3)
    largest = np.where(valid, tag, 0)
    stored = (packed[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / _SQRT2
    q = np.zeros((n, 4))
    q[rows[:, None], _STORED_COMPONENTS[largest]] = stored
    q[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - (stored**2).sum(axis=1)))
    q[~valid] = [1.0, 0.0, 0.0, 0.0]
    return q


def _encode_opacities(opacities: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(sigmoid(opacities) * 255.0), 0, 255).astype(np.uint8)


def _decode_opacities(alpha: np.ndarray) -> np.ndarray:
    a = np.clip(alpha.astype(np.float64) / 255.0, OPACITY_CLAMP, 1.0 - OPACITY_CLAMP)
    return np.log(a / (1.0 - a))


def sh_points(sh_rest: np.ndarray) -> np.ndarray:
    """shN [N,C,3] -> [N,3C] channel-major rows (all R coefficients, then G, then B: the PLY's f_rest)."""
    return np.ascontiguousarray(sh_rest.transpose(0, 2, 1).reshape(len(sh_rest), -1), dtype=np.float32)


def sh_rows(points: np.ndarray, num_coeffs: int) -> np.ndarray:
    """The inverse of `sh_points`: [N,3C] channel-major rows -> shN [N,C,3]."""
    return np.ascontiguousarray(points.reshape(len(points), 3, num_coeffs).transpose(0, 2, 1))


def _encode_sh(sh_rest: np.ndarray, palette_size: int, iterations: int, seed: int):
    """(labels [N], centroid texels [P·C, 3] uint8 codebook indices, codebook [256], palette size P)."""
    num_coeffs = sh_rest.shape[1]
    centroids, labels = kmeans(sh_points(sh_rest), palette_size, iterations, seed)
    codebook, indices = quantize_1d(centroids)  # [P, 3C]
    texels = indices.reshape(len(centroids), 3, num_coeffs).transpose(0, 2, 1).reshape(-1, 3)
    return labels, texels, codebook, len(centroids)


# ----------------------------------------------------------------------------------------------------
# Images and the archive
# ----------------------------------------------------------------------------------------------------


def _texture(width: int, height: int, rgba_rows: np.ndarray) -> np.ndarray:
    """An RGBA image [height, width, 4] holding `rgba_rows` [M,4] in its first M texels, zero after."""
    image = np.zeros((width * height, 4), dtype=np.uint8)
    image[: len(rgba_rows)] = rgba_rows
    return image.reshape(height, width, 4)


def _rgba(rgb: np.ndarray, alpha: np.ndarray | int = 255) -> np.ndarray:
    rows = np.empty((len(rgb), 4), dtype=np.uint8)
    rows[:, :3] = rgb
    rows[:, 3] = alpha
    return rows


def encode_webp(image: np.ndarray) -> bytes:
    """Lossless WebP of an RGBA uint8 image [H,W,4], every byte kept (`exact`: RGB under alpha 0 too).

    Effort: libwebp's default (quality 75 in lossless mode, as splat-transform); quality 100 made the fox
    scene's images 0.01 % smaller in 19× the time."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, "WEBP", lossless=True, quality=75, exact=True)
    return buffer.getvalue()


def _json_floats(codebook: np.ndarray) -> list[float]:
    """float32 codebook entries as the shortest decimals that read back as the same float32 (readers load
    codebooks into float32 arrays): 9-10 digits instead of the 17 of their exact double values."""
    return [float(str(value)) for value in codebook.astype(np.float32)]


def _zip_archive(members: dict[str, bytes]) -> bytes:
    """A zip of stored members (WebP is already compressed), with fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------------------------------


def write_sog(
    path: str | os.PathLike,
    splats: dict,
    *,
    sh_iterations: int = 10,
    palette_size: int | None = None,
    seed: int = 0,
) -> int:
    """Write splats as a PlayCanvas SOG archive, atomically. SH degree ≤ 3.

    `sh_iterations`: k-means rounds for the SH palette (splat-transform's `-i`, default 10);
    `palette_size`: SH palette entries (1..65536; default the reference's min(64, 2^⌊log2(N/1024)⌋)·1024);
    `seed`: the k-means seed (same splats and seed: the same file). Returns the number of splats written.
    """
    path = Path(path)
    if int(sh_iterations) < 1:
        raise InputError(f"{path}: SOG SH iterations must be ≥ 1, got {sh_iterations}")
    if palette_size is not None and not 1 <= int(palette_size) <= MAX_PALETTE:
        raise InputError(f"{path}: SOG palette size must be in 1..{MAX_PALETTE}, got {palette_size}")
    a = prepare_splats(path, splats)
    n, num_coeffs = len(a["means"]), a["shN"].shape[1]
    if num_coeffs not in SH_COEFFS:
        degree = round(math.sqrt(num_coeffs + 1)) - 1
        raise InputError(f"{path}: SOG holds SH up to degree 3, the splats have degree {degree}")
    width, height = sog_texture_size(n)
    if max(width, height) > MAX_TEXTURE_SIZE:
        raise InputError(f"{path}: {n} splats need {width}x{height} images, beyond WebP's {MAX_TEXTURE_SIZE} per side")

    order = morton_order(a["means"])
    a = {key: value[order] for key, value in a.items()}

    grid, mins, maxs = _encode_means(a["means"])
    scales_codebook, scale_labels = quantize_1d(a["scales"])
    sh0_codebook, sh0_labels = quantize_1d(a["sh0"])
    images = {
        "means_l.webp": _texture(width, height, _rgba((grid & 0xFF).astype(np.uint8))),
        "means_u.webp": _texture(width, height, _rgba((grid >> 8).astype(np.uint8))),
        "quats.webp": _texture(width, height, _encode_quats(a["quats"])),
        "scales.webp": _texture(width, height, _rgba(scale_labels)),
        "sh0.webp": _texture(width, height, _rgba(sh0_labels, _encode_opacities(a["opacities"]))),
    }
    meta = {
        "version": SOG_VERSION,
        "asset": {"generator": GENERATOR},
        "count": n,
        "means": {"mins": mins, "maxs": maxs, "files": FILES["means"]},
        "scales": {"codebook": _json_floats(scales_codebook), "files": FILES["scales"]},
        "quats": {"files": FILES["quats"]},
        "sh0": {"codebook": _json_floats(sh0_codebook), "files": FILES["sh0"]},
    }
    if num_coeffs:
        size = sog_palette_size(n) if palette_size is None else int(palette_size)
        labels, texels, sh_codebook, num_entries = _encode_sh(a["shN"], size, int(sh_iterations), seed)
        label_bytes = np.stack([labels & 0xFF, labels >> 8, np.zeros_like(labels)], axis=1).astype(np.uint8)
        images["shN_centroids.webp"] = _texture(PALETTE_ROW * num_coeffs, math.ceil(num_entries / PALETTE_ROW), _rgba(texels))
        images["shN_labels.webp"] = _texture(width, height, _rgba(label_bytes))
        meta["shN"] = {
            "count": num_entries,
            "bands": SH_COEFFS.index(num_coeffs),
            "codebook": _json_floats(sh_codebook),
            "files": FILES["shN"],
        }
    members = {name: encode_webp(image) for name, image in images.items()}
    members["meta.json"] = json.dumps(meta, separators=(",", ":")).encode()
    atomic_write(path, [_zip_archive(members)])
    return n


# ----------------------------------------------------------------------------------------------------
# Reader
# ----------------------------------------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class _Members:
    """The files of a SOG: the members of a `.sog` zip, or the files beside a `meta.json`."""

    _ZIP_ERRORS = (
        zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError, ValueError
    )

    def __init__(self, path: Path):
        self.path = path
        self.archive = None
        if path.name.lower() == "meta.json":
            if not path.is_file():
                raise InputError(f"{path}: file not found")
            return
        data = read_file_bytes(path)
        try:
            self.archive = zipfile.ZipFile(io.BytesIO(data))
        except self._ZIP_ERRORS as e:
            raise InputError(f"{path}: not a SOG file (not a readable zip archive: {_one_line(e)})") from None

    def read(self, name: str) -> bytes:
        if self.archive is None:
            if Path(name).name != name or name in ("", ".", ".."):
                raise InputError(f"{self.path}: meta.json names a file outside its folder ({name!r})")
            try:
                return (self.path.parent / name).read_bytes()
            except OSError as e:
                raise InputError(f"{self.path}: cannot read {name} beside it ({e.strerror or _one_line(e)})") from None
        try:
            return self.archive.read(name)
        except KeyError:
            raise InputError(f"{self.path}: not a SOG file (the archive has no {name})") from None
        except self._ZIP_ERRORS as e:
            raise InputError(f"{self.path}: corrupt SOG archive member {name} ({_one_line(e)})") from None


def _decode_webp(path: Path, name: str, data: bytes) -> tuple[np.ndarray, int, int]:
    """(texels [W·H, 4] uint8, width, height) of a WebP member; InputError naming the file otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["WEBP"]) as image:
                rgba = np.asarray(image.convert("RGBA"))
    except UnidentifiedImageError:
        raise InputError(f"{path}: {name} is not a WebP image") from None
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise InputError(f"{path}: {name} is not a readable WebP image ({_one_line(e)})") from None
    height, width = rgba.shape[:2]
    return rgba.reshape(-1, 4), width, height


class _MetaError(ValueError):
    pass


def _field(meta: dict, *keys: str):
    value = meta
    for i, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise _MetaError(f"no {'.'.join(keys[: i + 1])}")
        value = value[key]
    return value


def _numbers(meta: dict, *keys: str, length: int | None = None) -> np.ndarray:
    value = _field(meta, *keys)
    numbers = isinstance(value, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    if numbers and len(value) > 0 and (length is None or len(value) == length):
        try:
            array = np.array([float(x) for x in value])
        except OverflowError:  # an integer beyond float range
            array = np.array([np.inf])
        if np.isfinite(array).all():
            return array
    expected = f"{length} finite numbers" if length else "a list of finite numbers"
    raise _MetaError(f"{'.'.join(keys)} is not {expected}")


def _file_names(meta: dict, key: str, count: int) -> list[str]:
    names = _field(meta, key, "files")
    if not isinstance(names, list) or len(names) < count or not all(isinstance(x, str) for x in names[:count]):
        raise _MetaError(f"{key}.files does not name {count} file(s)")
    return names[:count]


def _integer(meta: dict, *keys: str, low: int, high: int) -> int:
    value = _field(meta, *keys)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _MetaError(f"{'.'.join(keys)} is not an integer in {low}..{high} (got {value!r})")
    return value


def _parse_meta(path: Path, data: bytes) -> dict:
    """The checked meta.json: count, means mins/maxs, codebooks, file names, SH bands and palette size."""
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: bad SOG meta.json (not JSON: {_one_line(e)})") from None
    try:
        if not isinstance(meta, dict):
            raise _MetaError("not a JSON object")
        if "version" not in meta:
            raise _MetaError("no version: a SOG version 1 (legacy) file, which is not supported")
        if meta["version"] != SOG_VERSION:
            raise _MetaError(f"SOG version {meta['version']!r} is not supported (only {SOG_VERSION})")
        parsed = {
            "count": _integer(meta, "count", low=1, high=MAX_TEXTURE_SIZE**2),
            "mins": _numbers(meta, "means", "mins", length=3),
            "maxs": _numbers(meta, "means", "maxs", length=3),
            "scales_codebook": _numbers(meta, "scales", "codebook").astype(np.float32),
            "sh0_codebook": _numbers(meta, "sh0", "codebook").astype(np.float32),
            "files": {key: _file_names(meta, key, len(FILES[key])) for key in ("means", "scales", "quats", "sh0")},
            "bands": 0,
        }
        if isinstance(meta.get("shN"), dict) and meta["shN"].get("bands", 0) != 0:
            parsed["bands"] = _integer(meta, "shN", "bands", low=0, high=3)
            parsed["palette_count"] = _integer(meta, "shN", "count", low=0, high=MAX_PALETTE)
            parsed["sh_codebook"] = _numbers(meta, "shN", "codebook").astype(np.float32)
            parsed["files"]["shN"] = _file_names(meta, "shN", 2)
    except _MetaError as e:
        raise InputError(f"{path}: bad SOG meta.json ({e})") from None
    model = meta.get("model", "default")
    if model != "default":
        warnings.warn(f"{path}: SOG splat model {model!r} read as ordinary 3DGS splats", stacklevel=3)
    return parsed


def _lookup(path: Path, codebook: np.ndarray, indices: np.ndarray, what: str) -> np.ndarray:
    if indices.size and int(indices.max()) >= len(codebook):
        raise InputError(f"{path}: {what} index {int(indices.max())} beyond its {len(codebook)}-entry codebook")
    return codebook[indices]


def read_sog(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SOG file (`.sog` zip, or an unbundled `meta.json` with its WebP files beside it) into a splat
    dict of float32 CPU tensors, in file order, with the reference decoder's semantics (see the module
    docstring). Raises InputError naming the file on any problem."""
    path = Path(path)
    members = _Members(path)
    meta = _parse_meta(path, members.read("meta.json"))
    n, files = meta["count"], meta["files"]

    def texels(key: str, index: int = 0, count: int = n, width_needed: int | None = None) -> tuple[np.ndarray, int, int]:
        name = files[key][index]
        rgba, width, height = _decode_webp(path, name, members.read(name))
        if width_needed is not None and width != width_needed:
            raise InputError(f"{path}: {name} is {width} texels wide, expected {width_needed} for SH degree {meta['bands']}")
        if len(rgba) < count:
            raise InputError(f"{path}: {name} is {width}x{height}, too small for {count} entries")
        return rgba, width, height

    low, high = texels("means", 0)[0][:n], texels("means", 1)[0][:n]
    grid = low[:, :3].astype(np.uint16) | (high[:, :3].astype(np.uint16) << 8)
    means = _decode_means(grid, meta["mins"], meta["maxs"])
    quats = _decode_quats(texels("quats")[0][:n])
    scales = _lookup(path, meta["scales_codebook"], texels("scales")[0][:n, :3], "scales")
    sh0_texels = texels("sh0")[0][:n]
    sh0 = _lookup(path, meta["sh0_codebook"], sh0_texels[:, :3], "sh0")
    opacities = _decode_opacities(sh0_texels[:, 3])

    num_coeffs = SH_COEFFS[meta["bands"]]
    sh_rest = np.zeros((n, num_coeffs, 3))
    if num_coeffs:
        palette_count = meta["palette_count"]
        centroids = texels("shN", 0, count=palette_count * num_coeffs, width_needed=PALETTE_ROW * num_coeffs)[0]
        palette = _lookup(path, meta["sh_codebook"], centroids[: palette_count * num_coeffs, :3], "shN")
        palette = palette.reshape(palette_count, num_coeffs, 3)
        label_texels = texels("shN", 1)[0][:n]
        labels = label_texels[:, 0].astype(np.int64) | (label_texels[:, 1].astype(np.int64) << 8)
        known = labels < palette_count  # the reference reads other labels as zero SH
        sh_rest[known] = palette[labels[known]]
    return to_splat_dict(means, scales, quats, opacities, sh0.reshape(n, 3), sh_rest)
