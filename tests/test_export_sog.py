"""PlayCanvas SOG (`gspruner.export.sog`): round trips within the bounds the format's quantization allows
(derived per splat from the file's own meta.json), the archive layout splat-transform expects, lossless
WebP, the quantizers, bad files, and interoperability with @playcanvas/splat-transform 3.7.0 both ways."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gspruner.errors import InputError
from gspruner.export import read_ply, write_ply
from gspruner.export.sog import (
    _optimal_splits,
    encode_webp,
    kmeans,
    quantize_1d,
    read_sog,
    sog_palette_size,
    sog_texture_size,
    write_sog,
)
from test_export_formats import make_splats, match, quat_error

REPO = Path(__file__).resolve().parents[1]
SPLAT_TRANSFORM = REPO / ".node" / "node_modules" / ".bin" / "splat-transform"
ROTATION_STEP = 1 / (255 * math.sqrt(2))  # error of a stored smallest-three component, rounded
MEMBERS = ["means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp"]
SH_MEMBERS = ["shN_centroids.webp", "shN_labels.webp"]


def sog_meta(path: Path) -> dict:
    return json.loads(zipfile.ZipFile(path).read("meta.json"))


def sog_image(path: Path, name: str) -> np.ndarray:
    """A member image as RGBA [H,W,4], decoded by Pillow directly (not by our reader)."""
    with Image.open(io.BytesIO(zipfile.ZipFile(path).read(name))) as image:
        assert image.format == "WEBP"
        return np.asarray(image.convert("RGBA"))


def codebook_bound(values: torch.Tensor, codebook: list[float]) -> torch.Tensor:
    """Per value, the error of its nearest codebook entry: half the gap between the entries that bracket it
    (the distance to the end entry outside the codebook's range)."""
    cb = torch.tensor(codebook, dtype=torch.float32).double()
    v = values.double()
    upper = torch.searchsorted(cb, v.contiguous()).clamp(1, len(cb) - 1)
    lo, hi = cb[upper - 1], cb[upper]
    inside = (v >= cb[0]) & (v <= cb[-1])
    outside = torch.minimum((v - cb[0]).abs(), (v - cb[-1]).abs())
    return torch.where(inside, 0.5 * (hi - lo), outside)


def position_bound(means: torch.Tensor, meta: dict) -> torch.Tensor:
    """Rounded 16-bit grid over l = sign(x)·ln(1+|x|): |Δl| ≤ step/2, so |Δx| ≤ (1+|x|)·expm1(step/2)."""
    step = (torch.tensor(meta["means"]["maxs"]) - torch.tensor(meta["means"]["mins"])).double() / 65535
    return (1 + means.double().abs()) * torch.expm1(step / 2)


def rotation_bound(quats: torch.Tensor) -> torch.Tensor:
    """ROTATION_STEP on the three stored components; the recomputed largest w = √(1 - Σa²) moves by
    Σ|a|·δ/w ≤ √3·√(1-w²)·δ/w ≤ 3δ (w ≥ 1/2), plus second order."""
    bound = torch.full(quats.shape, ROTATION_STEP, dtype=torch.float64)
    largest = quats.double().abs().argmax(dim=1)
    bound[torch.arange(len(quats)), largest] = 3 * ROTATION_STEP + 4 * ROTATION_STEP**2
    return bound


def assert_sog_round_trip(path: Path, src: dict, got: dict) -> dict:
    """`got` (read from `path`, file order) against the source splats, each quantity within its bound from
    the file's meta.json; returns the largest error of each."""
    meta = sog_meta(path)
    ref = match(src, got)
    n = len(got["means"])
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        assert got[key].dtype == torch.float32 and torch.isfinite(got[key]).all(), key
    errors = {
        "position": ((got["means"].double() - ref["means"].double()).abs(), position_bound(ref["means"], meta)),
        "rotation": (quat_error(got["quats"], ref["quats"]), rotation_bound(ref["quats"])),
        "opacity": (
            (torch.sigmoid(got["opacities"].double()) - torch.sigmoid(ref["opacities"].double())).abs(),
            torch.tensor(0.5 / 255 + 1e-6),
        ),
        "log scale": ((got["scales"] - ref["scales"]).abs(), codebook_bound(ref["scales"], meta["scales"]["codebook"])),
        "f_dc": ((got["sh0"] - ref["sh0"]).abs().reshape(n, 3), codebook_bound(ref["sh0"].reshape(n, 3), meta["sh0"]["codebook"])),
    }
    worst = {}
    for name, (err, bound) in errors.items():
        excess = (err.double() - bound - 1e-6).max().item()
        assert excess <= 0, f"{name} error {err.max().item():.3g} exceeds its bound by {excess:.3g}"
        worst[name] = err.max().item()
    return worst


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_round_trip_within_quantization_bounds(tmp_path, sh_degree):
    src = make_splats(n=600, sh_degree=sh_degree)
    path = tmp_path / "scene.sog"
    assert write_sog(path, src) == 600
    got = read_sog(path)
    assert got["shN"].shape == (600, (sh_degree + 1) ** 2 - 1, 3)
    worst = assert_sog_round_trip(path, src, got)
    assert worst["position"] < 2e-4 and worst["rotation"] < 0.009 and worst["log scale"] < 0.05
    if sh_degree:
        ref_sh = match(src, got)["shN"]
        assert_sh_palette(path, ref_sh, got["shN"])
        # 512 entries for 600 splats (88 merged): the SH error stays well below the spread of the SH values
        sh_err = (got["shN"].double() - ref_sh.double()).abs()
        assert sh_err.mean() < 0.2 * ref_sh.double().std(), (sh_err.mean(), ref_sh.std())


def assert_sh_palette(path: Path, src_sh: torch.Tensor, got_sh: torch.Tensor) -> None:
    """The SH palette is the k-means centroids of the source SH (each entry the mean of its members, after
    the last update), each coefficient the nearest of the 256 codebook entries; every splat reads its entry."""
    meta = sog_meta(path)
    n, num_coeffs = got_sh.shape[:2]
    labels_rgba = sog_image(path, "shN_labels.webp").reshape(-1, 4)[:n].astype(np.int64)
    labels = torch.from_numpy(labels_rgba[:, 0] | (labels_rgba[:, 1] << 8))
    count = meta["shN"]["count"]
    assert int(labels.max()) < count
    means = torch.zeros(count, num_coeffs, 3, dtype=torch.float64).index_add_(0, labels, src_sh.double())
    members = torch.bincount(labels, minlength=count)
    used = members > 0
    means = means[used] / members[used][:, None, None]
    decoded = torch.zeros(count, num_coeffs, 3)
    decoded[labels] = got_sh  # every splat of an entry reads the same values
    assert torch.equal(decoded[labels], got_sh)
    bound = codebook_bound(means.float(), meta["shN"]["codebook"])
    err = (decoded[used].double() - means).abs()
    assert (err - bound - 1e-6).max() <= 0, f"palette entry off its members' mean by {err.max().item():.3g}"


def test_sh_palette_smaller_than_the_splats(tmp_path):
    """palette_size=64 for 2000 splats: a real clustering (≈31 splats an entry), still the members' means."""
    src = make_splats(n=2000, sh_degree=2, sh_std=0.2)
    path = tmp_path / "p64.sog"
    write_sog(path, src, palette_size=64, sh_iterations=20)
    got = read_sog(path)
    assert sog_meta(path)["shN"]["count"] == 64 and sog_image(path, "shN_centroids.webp").shape == (1, 64 * 8, 4)
    assert_sog_round_trip(path, src, got)
    ref_sh = match(src, got)["shN"]
    assert_sh_palette(path, ref_sh, got["shN"])
    # the clustering beats a palette of 64 random splats' SH
    picked = ref_sh[torch.randperm(2000, generator=torch.Generator().manual_seed(1))[:64]].reshape(64, -1)
    random_err = torch.cdist(ref_sh.reshape(2000, -1), picked).min(dim=1).values.pow(2).mean()
    assert (got["shN"] - ref_sh).reshape(2000, -1).pow(2).sum(dim=1).mean() < 0.8 * random_err


def test_same_seed_same_file_and_nan_splats_dropped(tmp_path):
    src = make_splats(n=1500, sh_degree=1)
    write_sog(tmp_path / "a.sog", src, palette_size=256)
    write_sog(tmp_path / "b.sog", src, palette_size=256)
    assert (tmp_path / "a.sog").read_bytes() == (tmp_path / "b.sog").read_bytes()
    write_sog(tmp_path / "c.sog", src, palette_size=256, seed=1)
    assert (tmp_path / "c.sog").read_bytes() != (tmp_path / "a.sog").read_bytes()
    bad = {k: v.clone() for k, v in src.items()}
    bad["means"][3, 1] = float("nan")
    bad["quats"][7] = 0.0
    with pytest.warns(UserWarning, match="dropped 2 of 1500 splats"):
        assert write_sog(tmp_path / "d.sog", bad) == 1498
    assert len(read_sog(tmp_path / "d.sog")["means"]) == 1498


def test_single_splat_and_flat_axis(tmp_path):
    """One splat (every range zero: the grid value 0 reads back as min) and a scene flat in z."""
    one = make_splats(n=1, sh_degree=3)
    path = _written(tmp_path / "one.sog", one)
    got = read_sog(path)
    assert torch.allclose(got["means"], one["means"], atol=1e-6)
    assert_sog_round_trip(path, one, got)
    assert_sh_palette(path, one["shN"], got["shN"])
    flat = make_splats(n=200, sh_degree=0)
    flat["means"][:, 2] = 0.25
    write_sog(tmp_path / "flat.sog", flat)
    assert torch.allclose(read_sog(tmp_path / "flat.sog")["means"][:, 2], torch.tensor(0.25), atol=1e-7)


# --- layout ---------------------------------------------------------------------------------------


def test_layout_is_what_splat_transform_writes(tmp_path):
    path = tmp_path / "scene.sog"
    write_sog(path, make_splats(n=600, sh_degree=3))
    archive = zipfile.ZipFile(path)
    assert archive.namelist() == MEMBERS + SH_MEMBERS + ["meta.json"]  # splat-transform's order
    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    meta = sog_meta(path)
    assert set(meta) == {"version", "asset", "count", "means", "scales", "quats", "sh0", "shN"}
    assert meta["version"] == 2 and meta["count"] == 600
    assert meta["means"]["files"] == MEMBERS[:2] and meta["quats"]["files"] == ["quats.webp"]
    assert meta["scales"]["files"] == ["scales.webp"] and meta["sh0"]["files"] == ["sh0.webp"]
    assert meta["shN"]["files"] == SH_MEMBERS and meta["shN"]["bands"] == 3 and meta["shN"]["count"] == 512
    assert len(meta["means"]["mins"]) == len(meta["means"]["maxs"]) == 3
    for key in ("scales", "sh0", "shN"):
        codebook = meta[key]["codebook"]
        assert len(codebook) == 256 and codebook == sorted(codebook)
        # float32 values as their shortest decimals (readers load codebooks into float32 arrays)
        assert all(float(str(np.float32(v))) == v for v in codebook)
    # per-splat images: ceil(√600/4)·4 = 28 wide, ceil(600/28/4)·4 = 24 high; the palette 64 entries × 15 a row
    assert sog_texture_size(600) == (28, 24)
    for name in MEMBERS + ["shN_labels.webp"]:
        image = sog_image(path, name)
        assert image.shape == (24, 28, 4), name
        texels = image.reshape(-1, 4)
        assert not texels[600:].any(), f"{name}: padding texels are not zero"
    assert sog_image(path, "shN_centroids.webp").shape == (512 // 64, 64 * 15, 4)
    quats = sog_image(path, "quats.webp").reshape(-1, 4)[:600]
    assert set(np.unique(quats[:, 3])) <= {252, 253, 254, 255}
    for name in ("means_l.webp", "means_u.webp", "scales.webp", "shN_labels.webp"):
        assert (sog_image(path, name).reshape(-1, 4)[:600, 3] == 255).all()
    assert (sog_image(path, "shN_labels.webp").reshape(-1, 4)[:600, 2] == 0).all()
    assert "shN" not in sog_meta(_written(tmp_path / "sh0.sog", make_splats(n=50, sh_degree=0)))


def _written(path: Path, splats: dict) -> Path:
    write_sog(path, splats)
    return path


def morton_code(cell: np.ndarray) -> int:
    """Bits x0 y0 z0 x1 y1 z1 ... of three 10-bit cell coordinates (x lowest)."""
    return sum(((int(cell[axis]) >> bit) & 1) << (3 * bit + axis) for bit in range(10) for axis in range(3))


def test_splats_are_in_morton_order(tmp_path):
    """File order = ascending Morton code of the source positions over their bounding box (1024 cells an
    axis; no cell shared by more than 256 splats here, so no refinement), computed independently."""
    src = make_splats(n=600, sh_degree=0)
    got = read_sog(_written(tmp_path / "m.sog", src))
    p = match(src, got)["means"].double().numpy()
    lo, extent = p.min(axis=0), p.max(axis=0) - p.min(axis=0)
    cells = np.minimum(1023, (p - lo) * (1024 / extent)).astype(np.int64)
    codes = [morton_code(c) for c in cells]
    assert codes == sorted(codes)


def test_positions_use_the_log_grid(tmp_path):
    """means_l/means_u hold round(65535·(l - min)/(max - min)) of l = sign(x)·ln(1+|x|), mins/maxs of l."""
    src = make_splats(n=300, sh_degree=0)
    src["means"] = src["means"] * 8  # up to ±40: far from linear in l
    path = _written(tmp_path / "log.sog", src)
    meta = sog_meta(path)
    got = read_sog(path)
    l_src = torch.sign(got["means"].double()) * torch.log1p(got["means"].double().abs())
    grid = sog_image(path, "means_l.webp").reshape(-1, 4)[:300, :3].astype(np.int64)
    grid |= sog_image(path, "means_u.webp").reshape(-1, 4)[:300, :3].astype(np.int64) << 8
    mins, maxs = np.array(meta["means"]["mins"]), np.array(meta["means"]["maxs"])
    l_file = mins + (maxs - mins) * grid / 65535
    assert np.allclose(l_file, l_src.numpy(), atol=1e-6)
    l_true = torch.sign(src["means"].double()) * torch.log1p(src["means"].double().abs())
    assert np.allclose(mins, l_true.min(dim=0).values.numpy()) and np.allclose(maxs, l_true.max(dim=0).values.numpy())
    assert_sog_round_trip(path, src, got)


def test_quats_and_opacity_bytes_follow_the_reference_decoder(tmp_path):
    """quats.webp decoded here from the reference's formula (not by our reader): the three stored
    components in w x y z order skipping the largest, (b/255·2 - 1)/√2; opacity bytes 0 and 255 read as
    logit(1e-6) and logit(1 - 1e-6) (the reference's clamp)."""
    src = make_splats(n=300, sh_degree=0)
    src["opacities"][:5], src["opacities"][5:10] = -30.0, 30.0
    path = _written(tmp_path / "q.sog", src)
    got = read_sog(path)
    ref = match(src, got)
    texels = sog_image(path, "quats.webp").reshape(-1, 4)[:300].astype(np.float64)
    stored = {0: [1, 2, 3], 1: [0, 2, 3], 2: [0, 1, 3], 3: [0, 1, 2]}
    quats = np.zeros((300, 4))
    for i, (r, g, b, a) in enumerate(texels):
        largest = int(a) - 252
        quats[i, stored[largest]] = (np.array([r, g, b]) / 255 * 2 - 1) / math.sqrt(2)
        quats[i, largest] = math.sqrt(max(0.0, 1 - (quats[i] ** 2).sum()))
    assert (quat_error(torch.from_numpy(quats), ref["quats"]) <= rotation_bound(ref["quats"]) + 1e-6).all()
    alpha = sog_image(path, "sh0.webp").reshape(-1, 4)[:300, 3]
    low, high = ref["opacities"] < -20, ref["opacities"] > 20
    assert (alpha[low.numpy()] == 0).all() and (alpha[high.numpy()] == 255).all()
    assert torch.allclose(got["opacities"][low].double(), torch.tensor(math.log(1e-6 / (1 - 1e-6))).double())
    assert torch.allclose(got["opacities"][high].double(), torch.tensor(math.log((1 - 1e-6) / 1e-6)).double())


def test_webp_is_lossless_including_rgb_under_zero_alpha():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(37, 52, 4), dtype=np.uint8)
    image[::2, :, 3] = 0  # sh0 alpha is the opacity byte: 0 for transparent splats, RGB must survive
    image[5, :, 3] = 255
    with Image.open(io.BytesIO(encode_webp(image))) as decoded:
        assert decoded.format == "WEBP"
        assert np.array_equal(np.asarray(decoded.convert("RGBA")), image)
    opaque = image.copy()
    opaque[..., 3] = 255  # stored without alpha by libwebp: still reads back RGBA 255
    with Image.open(io.BytesIO(encode_webp(opaque))) as decoded:
        assert np.array_equal(np.asarray(decoded.convert("RGBA")), opaque)


def test_palette_size_rule():
    assert [sog_palette_size(n) for n in (1, 600, 1023, 1024, 5000, 50_000, 10**6)] == [1, 512, 512, 1024, 4096, 32768, 65536]
    assert sog_texture_size(1) == (4, 4) and sog_texture_size(50_000) == (224, 224)


# --- quantizers -----------------------------------------------------------------------------------


def test_optimal_splits_match_full_dynamic_programming():
    rng = np.random.default_rng(3)
    for trial in range(4):
        h, k = 90, 12
        weights = rng.integers(0, 3, h).astype(float) ** 0.5 if trial % 2 else rng.random(h)
        centres = np.sort(rng.normal(size=h) ** 3)
        w, wx, wxx = (np.r_[0, np.cumsum(weights * centres**p)] for p in (0, 1, 2))
        a, b = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
        with np.errstate(all="ignore"):
            sw = w[b + 1] - w[a]
            cost = np.where(sw > 0, wxx[b + 1] - wxx[a] - (wx[b + 1] - wx[a]) ** 2 / sw, 0.0)
        cost[a > b] = np.inf
        best = cost[0].copy()
        for _ in range(1, k):  # the reference's O(K·H²) search
            best = (best[:-1, None] + cost[1:]).min(axis=0)
        splits, total, j = _optimal_splits(cost, k), 0.0, h - 1
        for m in range(k - 1, -1, -1):
            s = int(splits[m - 1][j]) if m > 0 else -1
            total += cost[s + 1, j]
            j = s
        assert total == pytest.approx(best[-1], rel=1e-9, abs=1e-12)


def test_quantize_1d_codebook_and_labels():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(size=5000), rng.normal(20, 0.01, size=30)]).astype(np.float32).reshape(-1, 2)
    codebook, labels = quantize_1d(values)
    assert codebook.dtype == np.float32 and len(codebook) == 256 and np.all(np.diff(codebook) >= 0)
    assert labels.shape == values.shape and labels.dtype == np.uint8
    nearest = np.abs(values[..., None] - codebook).min(axis=-1)
    assert np.allclose(np.abs(values - codebook[labels]), nearest, atol=1e-7)
    errors = np.abs(values - codebook[labels])
    assert errors.max() < 0.1 and errors[values > 10].max() < 0.05  # the outlier cluster gets its own entries
    few, few_labels = quantize_1d(np.array([1.0, 2.0, 2.0, 5.0]))
    assert set(few[few_labels].tolist()) == {1.0, 2.0, 5.0}
    same, same_labels = quantize_1d(np.full(10, 3.5))
    assert (same == 3.5).all() and (same_labels == 0).all()


def test_kmeans_reaches_a_lloyd_fixed_point_deterministically():
    rng = np.random.default_rng(0)
    blobs = rng.normal(size=(8, 9)) * 3
    points = (blobs[rng.integers(0, 8, 3000)] + rng.normal(size=(3000, 9)) * 0.3).astype(np.float32)
    centroids, labels = kmeans(points, 8, iterations=50, seed=0)
    again = kmeans(points, 8, iterations=50, seed=0)
    assert np.array_equal(centroids, again[0]) and np.array_equal(labels, again[1])
    distance = ((points[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    assert np.array_equal(labels, distance.argmin(axis=1))  # every point at its nearest centroid
    for c in range(8):  # every centroid the mean of its points
        assert np.allclose(centroids[c], points[labels == c].mean(axis=0), atol=1e-5)
    own, own_labels = kmeans(points[:5], 8, iterations=3)
    assert np.array_equal(own, points[:5]) and np.array_equal(own_labels, np.arange(5))


def _plain_lloyd(points: np.ndarray, k: int, iterations: int, seed: int = 0):
    """Lloyd's algorithm with every distance measured each round (the reference for the bounded one)."""
    rng = np.random.default_rng(seed)
    x = points.astype(np.float64)
    centroids = points[rng.choice(len(points), size=k, replace=False)].astype(np.float64)
    labels = None
    for _ in range(iterations):
        previous = labels
        labels = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
        counts = np.bincount(labels, minlength=k)
        if previous is not None and (counts > 0).all() and np.array_equal(previous, labels):
            break
        moved = np.stack([x[labels == c].mean(0) if counts[c] else centroids[c] for c in range(k)])
        if not (counts > 0).all():
            empty = np.nonzero(counts == 0)[0]
            moved[empty] = x[rng.integers(0, len(x), size=len(empty))]
        centroids = moved
    return centroids, labels


@pytest.mark.parametrize("k, iterations", [(64, 6), (300, 10)])
def test_kmeans_with_bounds_equals_plain_lloyd(k, iterations):
    """Hamerly's bounds skip distance computations, never a label change: the same labels and centroids as
    measuring every distance every round (on data that has not converged in `iterations` rounds)."""
    rng = np.random.default_rng(1)
    points = (rng.normal(size=(2500, 12)) * np.linspace(0.2, 2.0, 12)).astype(np.float32)
    centroids, labels = kmeans(points, k, iterations=iterations, seed=3)
    ref_centroids, ref_labels = _plain_lloyd(points, k, iterations, seed=3)
    assert np.array_equal(labels, ref_labels)
    assert np.allclose(centroids, ref_centroids, atol=1e-5)


# --- bad input ------------------------------------------------------------------------------------


def _rezip(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            data = replace.get(name, a.read(name))
            if data is not None:
                b.writestr(name, data)
    return dst


def test_bad_files_raise_one_line_input_errors(tmp_path):
    good = _written(tmp_path / "good.sog", make_splats(n=300, sh_degree=1))
    data = good.read_bytes()
    meta = sog_meta(good)
    def with_meta(**changes) -> dict[str, bytes]:
        return {"meta.json": json.dumps({**meta, **changes}).encode()}

    cases = {
        "truncated.sog": lambda p: p.write_bytes(data[: len(data) // 2]),
        "garbage.sog": lambda p: p.write_bytes(b"not a zip at all " * 40),
        "empty.sog": lambda p: p.write_bytes(b""),
        "no_meta.sog": lambda p: _rezip(good, p, {"meta.json": None}),
        "no_quats.sog": lambda p: _rezip(good, p, {"quats.webp": None}),
        "bad_json.sog": lambda p: _rezip(good, p, {"meta.json": b"{version: 2"}),
        "v1.sog": lambda p: _rezip(good, p, {"meta.json": json.dumps({k: v for k, v in meta.items() if k != "version"}).encode()}),
        "no_codebook.sog": lambda p: _rezip(good, p, with_meta(scales={"files": ["scales.webp"]})),
        "huge_min.sog": lambda p: _rezip(good, p, with_meta(means={**meta["means"], "mins": [10**400, 0, 0]})),
        "count_too_big.sog": lambda p: _rezip(good, p, with_meta(count=10_000)),
        "bad_webp.sog": lambda p: _rezip(good, p, {"sh0.webp": zipfile.ZipFile(good).read("sh0.webp")[:100]}),
        "png.sog": lambda p: _rezip(good, p, {"scales.webp": _png()}),
        "short_codebook.sog": lambda p: _rezip(good, p, with_meta(sh0={**meta["sh0"], "codebook": [0.5]})),
        "narrow_palette.sog": lambda p: _rezip(good, p, with_meta(shN={**meta["shN"], "bands": 2})),
    }
    for name, make in cases.items():
        path = tmp_path / name
        make(path)
        with pytest.raises(InputError) as exc:
            read_sog(path)
        message = str(exc.value)
        assert str(path) in message and "\n" not in message, (name, message)
    with pytest.raises(InputError, match="file not found"):
        read_sog(tmp_path / "missing.sog")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (28, 24)).save(buffer, "PNG")
    return buffer.getvalue()


def test_failed_writes_leave_no_file(tmp_path, monkeypatch):
    import gspruner.export.sog as sog

    splats = make_splats(n=100, sh_degree=1)
    with pytest.raises(InputError, match="up to degree 3"):
        write_sog(tmp_path / "deg4.sog", {**splats, "shN": torch.zeros(100, 24, 3)})
    nan = {**splats, "means": torch.full((100, 3), float("nan"))}
    with pytest.raises(InputError, match="no valid splats"):
        write_sog(tmp_path / "nan.sog", nan)
    with pytest.raises(InputError, match="palette size"):
        write_sog(tmp_path / "palette.sog", splats, palette_size=0)
    with pytest.raises(InputError, match="iterations"):
        write_sog(tmp_path / "iter.sog", splats, sh_iterations=0)
    existing = _written(tmp_path / "existing.sog", splats)
    before = existing.read_bytes()

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sog, "_zip_archive", fail)
    with pytest.raises(RuntimeError):
        write_sog(existing, make_splats(n=50, sh_degree=0))
    assert existing.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.sog"]


def test_reads_unbundled_meta_json(tmp_path):
    path = _written(tmp_path / "scene.sog", make_splats(n=200, sh_degree=1))
    folder = tmp_path / "unbundled"
    folder.mkdir()
    zipfile.ZipFile(path).extractall(folder)
    bundled, unbundled = read_sog(path), read_sog(folder / "meta.json")
    assert all(torch.equal(bundled[k], unbundled[k]) for k in bundled)


# --- interoperability with splat-transform 3.7.0 ------------------------------------------------



def assert_same_splats(a: dict, b: dict, what: str, atol: float = 1e-5) -> None:
    for key in a:
        assert a[key].shape == b[key].shape, (what, key)
        if a[key].numel():
            diff = (a[key] - b[key]).abs().max().item()
            assert diff <= atol * max(1.0, b[key].abs().max().item() if key == "means" else 1.0), f"{what}: {key} differs by {diff:.3g}"


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_splat_transform_decodes_our_files_as_we_do(tmp_path, splat_transform, sh_degree):
    """Our .sog -> splat-transform -> .ply equals our own read of the .sog (same decoder semantics, same
    axes), and so the source splats within the quantization bounds."""
    src = make_splats(n=600, sh_degree=sh_degree)
    src["opacities"][:5], src["opacities"][5:10] = -30.0, 30.0  # alpha bytes 0 and 255: the decoder's clamp
    ours = _written(tmp_path / "ours.sog", src)
    splat_transform(ours, tmp_path / "theirs.ply")
    theirs = read_ply(tmp_path / "theirs.ply")
    assert_same_splats(theirs, read_sog(ours), "splat-transform's decode of our file")
    assert_sog_round_trip(ours, src, theirs)


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_we_decode_splat_transform_files_as_it_does(tmp_path, splat_transform, sh_degree):
    """splat-transform's .sog of a PLY (CPU k-means) read by read_sog equals its own decode (.sog -> .ply),
    lies in the PLY's axes, and is in the same (Morton) order as our file of the same PLY."""
    src = make_splats(n=600, sh_degree=sh_degree)
    src["opacities"][:5], src["opacities"][5:10] = -30.0, 30.0
    write_ply(tmp_path / "src.ply", src)
    splat_transform("-g", "cpu", tmp_path / "src.ply", tmp_path / "theirs.sog")
    splat_transform(tmp_path / "theirs.sog", tmp_path / "theirs.ply")
    got = read_sog(tmp_path / "theirs.sog")
    assert_same_splats(got, read_ply(tmp_path / "theirs.ply"), "our decode of splat-transform's file")
    assert sog_meta(tmp_path / "theirs.sog")["count"] == 600
    # positions match the PLY's, not flipped; splat-transform truncates to the grid: up to twice our bound
    ref = match(src, got)
    err = (got["means"].double() - ref["means"].double()).abs()
    assert (err <= 2 * position_bound(ref["means"], sog_meta(tmp_path / "theirs.sog")) + 1e-6).all()
    assert (quat_error(got["quats"], ref["quats"]) <= 2 * rotation_bound(ref["quats"]) + 1e-6).all()
    ours = read_sog(_written(tmp_path / "ours.sog", read_ply(tmp_path / "src.ply")))
    assert torch.equal(torch.cdist(ours["means"], got["means"]).argmin(dim=1), torch.arange(600))
