"""Compact scene formats (compressed PLY, SPZ, .splat): round trips within the quantization bounds the
format allows, layouts, sizes, NaN handling, bad files, the format registry, the export command, and
interoperability with @playcanvas/splat-transform 3.7.0 (an independent reader/writer, via node)."""

from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch

from gspruner.errors import InputError
from gspruner.export import (
    FORMATS,
    ExportConfig,
    detect_format,
    read_compressed_ply,
    read_ply,
    read_splat,
    read_splats,
    read_spz,
    run_export,
    write_compressed_ply,
    write_ply,
    write_splat,
    write_splats,
    write_spz,
)
from gspruner.export.compressed_ply import decode_sh_byte, encode_sh_bytes
from gspruner.export.spz import rdf_to_rub
from gspruner.render.sh import eval_sh_bases

SH_C0 = 0.28209479177387814
REPO = Path(__file__).resolve().parents[1]
SPLAT_TRANSFORM = REPO / ".node" / "node_modules" / ".bin" / "splat-transform"


def make_splats(n: int = 600, sh_degree: int = 3, seed: int = 0, sh_std: float | None = None) -> dict:
    """Splats on a jittered unit grid (neighbours ≥ 0.4 apart, so decoded splats match their originals by
    nearest position), with values inside every format's range: log scales [-6, 1], opacity logits
    [-4, 4], f_dc [-1.5, 1.5] (.splat clips colour outside [0, 1]), SH in [-0.9, 0.9] (SPZ: [-1, 1))."""
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    i = torch.arange(n)
    grid = torch.stack([i % 10, (i // 10) % 10, i // 100], dim=1).float()
    sh_rest = (torch.rand(n, k - 1, 3, generator=g) * 1.8 - 0.9) if sh_std is None else torch.randn(n, k - 1, 3, generator=g) * sh_std
    return {
        "means": grid - 4.5 + (torch.rand(n, 3, generator=g) - 0.5) * 0.6,
        "scales": torch.rand(n, 3, generator=g) * 7 - 6,
        "quats": torch.randn(n, 4, generator=g) * 3,  # not normalized
        "opacities": torch.rand(n, generator=g) * 8 - 4,
        "sh0": torch.rand(n, 1, 3, generator=g) * 3 - 1.5,
        "shN": sh_rest.clamp(-0.9, 0.9),
    }


def match(ref: dict, got: dict) -> dict:
    """The rows of `ref` in the order of `got`, by nearest position (asserting a one-to-one match)."""
    idx = torch.cdist(got["means"].double(), ref["means"].double()).argmin(dim=1)
    assert len(set(idx.tolist())) == len(idx) == len(ref["means"]), "decoded splats do not match one to one"
    return {k: v[idx] for k, v in ref.items()}


def unit_quats(q: torch.Tensor) -> torch.Tensor:
    return q.double() / q.double().norm(dim=1, keepdim=True)


def quat_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-component |a - b| of unit quaternions, up to the sign of the quaternion: [N,4]."""
    a, b = unit_quats(a), unit_quats(b)
    sign = torch.where((a * b).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    return (a - sign * b).abs()


def assert_within(ref: dict, got: dict, tol: dict, what: str) -> None:
    """Compare decoded splats with the originals (same order): tol gives the bound of each quantity,
    a scalar or a tensor broadcastable to it (positions, log scales, f_dc, SH: absolute; opacity: in
    sigmoid; rotation: per component of the unit quaternion up to sign)."""
    eps = 1e-5
    n = len(ref["means"])
    assert got["means"].shape == (n, 3) and got["quats"].shape == (n, 4) and got["sh0"].shape == (n, 1, 3)
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        assert got[key].dtype == torch.float32 and torch.isfinite(got[key]).all(), (what, key)
    checks = {
        "position": ((got["means"].double() - ref["means"].double()).abs(), tol["position"]),
        "scale": ((got["scales"].double() - ref["scales"].double()).abs(), tol["scale"]),
        "opacity": ((torch.sigmoid(got["opacities"].double()) - torch.sigmoid(ref["opacities"].double())).abs(), tol["opacity"]),
        "dc": ((got["sh0"].double() - ref["sh0"].double()).abs().reshape(n, 3), tol["dc"]),
        "rotation": (quat_error(got["quats"], ref["quats"]), tol["rotation"]),
    }
    if got["shN"].shape[1]:
        k = got["shN"].shape[1]
        checks["sh"] = ((got["shN"].double() - ref["shN"][:, :k].double()).abs(), tol["sh"])
    for name, (err, bound) in checks.items():
        bound = torch.as_tensor(bound, dtype=torch.float64)
        excess = err - bound - eps
        assert excess.max() <= 0, f"{what}: {name} error {err.max().item():.3g} exceeds its bound (by {excess.max().item():.3g})"


# --- quantization bounds of each format (derived in the module docstrings) ------------------------


def compressed_bounds(path: Path) -> dict:
    """Per-splat bounds of a compressed PLY, in file order, from its chunk element."""
    chunk = plyfile.PlyData.read(str(path))["chunk"].data
    n = plyfile.PlyData.read(str(path))["vertex"].count
    ci = np.arange(n) // 256
    steps = np.array([2047.0, 1023.0, 2047.0])

    def rng(prefix, axes):
        lo = np.stack([chunk[f"min_{prefix}{a}"] for a in axes], axis=1).astype(np.float64)
        hi = np.stack([chunk[f"max_{prefix}{a}"] for a in axes], axis=1).astype(np.float64)
        return torch.from_numpy((hi - lo)[ci])

    return {
        "position": rng("", "xyz") / (2 * torch.from_numpy(steps)),
        "scale": rng("scale_", "xyz") / (2 * torch.from_numpy(steps)),
        "dc": rng("", "rgb") / (2 * 255 * SH_C0),
        "opacity": 0.5 / 255,
        "rotation": 5 * math.sqrt(2) / (2 * 1023),  # stored components √2/2046; the largest is recomputed
        "sh": 1 / 64,
    }


def spz_bounds(version: int, num_rest: int, sh_bits: tuple[int, int] = (8, 8)) -> dict:
    """sh_bits (8, 8): our default; (5, 4): the reference encoder's buckets (and splat-transform's files)."""
    sh = torch.full((num_rest, 1), (1 << (8 - sh_bits[1])) / 256 + (0.5 / 128 if sh_bits[1] < 8 else 0.0))
    sh[:3] = (1 << (8 - sh_bits[0])) / 256 + (0.5 / 128 if sh_bits[0] < 8 else 0.0)
    return {
        "position": 0.5 / 4096 + 1e-6,
        "scale": 1 / 32,
        "dc": 0.5 / (0.15 * 255),
        "opacity": 0.5 / 255,
        "rotation": 5 * math.sqrt(0.5) / (2 * 511) if version >= 3 else 0.1,  # v2: w recomputed, coarse when small
        "sh": sh,
    }


SPLAT_BOUNDS = {"position": 0.0, "scale": 1e-6, "dc": 0.5 / (255 * SH_C0), "opacity": 0.5 / 255, "rotation": 2 / 128}


# --- registry -----------------------------------------------------------------------------------


def test_registry_names_and_detection(tmp_path):
    assert set(FORMATS) == {"ply", "sog", "spz", "glb", "compressed-ply", "splat"}
    splats = make_splats(n=300, sh_degree=1)
    for fmt, suffix in FORMATS.items():
        path = tmp_path / f"scene{suffix}"
        with pytest.warns(UserWarning) if fmt == "splat" else _no_warning():
            assert write_splats(path, splats, fmt) == 300
        assert detect_format(path) == fmt
    # a compressed PLY named plain .ply is recognised by its `chunk` element
    shutil.copy(tmp_path / "scene.compressed.ply", tmp_path / "other.ply")
    assert detect_format(tmp_path / "other.ply") == "compressed-ply"
    assert read_splats(tmp_path / "other.ply")["shN"].shape == (300, 3, 3)
    (tmp_path / "scene.obj").write_text("v 0 0 0\n")
    with pytest.raises(InputError, match="scene.obj.*unknown scene file type"):
        read_splats(tmp_path / "scene.obj")
    with pytest.raises(InputError, match="unknown scene format"):
        write_splats(tmp_path / "x.ply", splats, "obj")
    with pytest.raises(InputError, match="nope.spz: file not found"):
        read_splats(tmp_path / "nope.spz")


class _no_warning:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_ply_via_registry_is_bit_exact(tmp_path, sh_degree):
    splats = make_splats(n=50, sh_degree=sh_degree)
    write_splats(tmp_path / "a.ply", splats, "ply")
    back = read_splats(tmp_path / "a.ply")
    for key in splats:
        assert torch.equal(back[key], splats[key]), key


# --- compressed PLY -------------------------------------------------------------------------------


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_compressed_ply_round_trip_and_layout(tmp_path, sh_degree):
    n = 600  # three chunks, the last one short
    splats = make_splats(n=n, sh_degree=sh_degree)
    path = tmp_path / "scene.compressed.ply"
    assert write_compressed_ply(path, splats) == n
    ply = plyfile.PlyData.read(str(path))
    names = [e.name for e in ply.elements]
    assert names == (["chunk", "vertex", "sh"] if sh_degree else ["chunk", "vertex"])  # no empty `sh`
    assert ply["chunk"].count == 3 and len(ply["chunk"].properties) == 18
    assert all(p.val_dtype == "f4" for p in ply["chunk"].properties)
    assert [p.name for p in ply["vertex"].properties] == ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
    assert all(p.val_dtype == "u4" for p in ply["vertex"].properties)
    num_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    if sh_degree:
        assert [p.name for p in ply["sh"].properties] == [f"f_rest_{i}" for i in range(num_rest)]
        assert all(p.val_dtype == "u1" for p in ply["sh"].properties)
    data = path.read_bytes()
    header = data[: data.index(b"end_header\n") + 11]
    assert len(data) - len(header) == 3 * 72 + n * (16 + num_rest)

    back = read_compressed_ply(path)  # file (Morton) order
    assert back["shN"].shape == (n, num_rest // 3, 3)
    assert_within(match(splats, back), back, compressed_bounds(path), "compressed-ply")
    # Morton order: consecutive splats are near each other (vs ~5 units between random grid cells)
    assert (back["means"][1:] - back["means"][:-1]).norm(dim=1).median() < 1.6


def test_compressed_ply_single_splat_and_degenerate_chunk(tmp_path):
    splats = make_splats(n=1, sh_degree=1)
    write_compressed_ply(tmp_path / "one.compressed.ply", splats)
    back = read_compressed_ply(tmp_path / "one.compressed.ply")
    # a one-splat chunk has zero-width bounds: everything decodes to the bound itself, exactly
    assert torch.equal(back["means"], splats["means"]) and torch.equal(back["scales"], splats["scales"])
    assert torch.allclose(back["sh0"], splats["sh0"], atol=1e-5)
    same = {k: v.repeat(300, *([1] * (v.dim() - 1))) for k, v in make_splats(n=1, sh_degree=0).items()}
    write_compressed_ply(tmp_path / "same.compressed.ply", same)  # 300 identical splats: no NaN from 0/0
    back = read_compressed_ply(tmp_path / "same.compressed.ply")
    assert torch.isfinite(back["means"]).all() and torch.allclose(back["means"], same["means"])


def test_compressed_ply_reads_12_float_chunks(tmp_path):
    """Older SuperSplat files have no colour bounds: packed RGB is then the absolute colour."""
    splats = make_splats(n=300, sh_degree=0)
    path = tmp_path / "new.compressed.ply"
    write_compressed_ply(path, splats)
    ply = plyfile.PlyData.read(str(path))
    chunk, vertex = ply["chunk"].data, ply["vertex"].data.copy()
    old_chunk = np.empty(len(chunk), dtype=[(name, "<f4") for name in chunk.dtype.names[:12]])
    for name in old_chunk.dtype.names:
        old_chunk[name] = chunk[name]
    colors = (0.5 + SH_C0 * read_compressed_ply(path)["sh0"].numpy()[:, 0]).clip(0, 1)
    rgb = np.floor(colors * 255 + 0.5).astype(np.uint32)
    vertex["packed_color"] = (rgb[:, 0] << 24) | (rgb[:, 1] << 16) | (rgb[:, 2] << 8) | (vertex["packed_color"] & 0xFF)
    old = tmp_path / "old.compressed.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(old_chunk, "chunk"), plyfile.PlyElement.describe(vertex, "vertex")]).write(str(old))
    back = read_compressed_ply(old)
    tol = dict(compressed_bounds(path), dc=1 / 255 / SH_C0)
    assert_within(match(splats, back), back, tol, "12-float compressed-ply")


def test_compressed_ply_size_near_budget(tmp_path):
    for sh_degree, budget in ((0, 16 + 72 / 256), (3, 61 + 72 / 256)):
        splats = make_splats(n=4096, sh_degree=sh_degree)
        path = tmp_path / f"sh{sh_degree}.compressed.ply"
        write_compressed_ply(path, splats)
        per_splat = os.path.getsize(path) / 4096
        assert budget <= per_splat < budget + 0.5, (sh_degree, per_splat)  # + header


# --- SPZ ------------------------------------------------------------------------------------------


def _spz_raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_spz_round_trip_and_layout(tmp_path, version, sh_degree):
    n = 300
    splats = make_splats(n=n, sh_degree=sh_degree)
    path = tmp_path / "scene.spz"
    assert write_spz(path, splats, version=version) == n
    raw = _spz_raw(path)  # v2/v3: one gzip stream, no extension records (flags 0)
    magic, ver, count, degree, frac, flags, reserved = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, ver, count, degree, frac, flags, reserved) == (0x5053474E, version, n, sh_degree, 12, 0, 0)
    num_rest = (sh_degree + 1) ** 2 - 1
    assert len(raw) == 16 + n * (9 + 1 + 3 + 3 + (4 if version == 3 else 3) + 3 * num_rest)
    back = read_spz(path)  # order kept
    assert back["shN"].shape == (n, num_rest, 3)
    assert_within(splats, back, spz_bounds(version, num_rest), f"spz v{version}")
    if version == 3:  # smallest-three: quaternions far better than v2
        assert quat_error(back["quats"], splats["quats"]).max() < 3e-3


def _spz_v4(path: Path) -> dict:
    """The parts of an SPZ v4 file: header fields, extension records, the decompressed streams."""
    import zstandard

    data = path.read_bytes()
    magic, version, n, degree, frac, flags, num_streams, toc = struct.unpack_from("<IIIBBBBI", data)
    assert data[20:32] == bytes(12)
    records, offset = [], 32
    while offset < toc:
        kind, length = struct.unpack_from("<II", data, offset)
        records.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 8 + length
    streams, offset = [], toc + 16 * num_streams
    for i in range(num_streams):
        compressed, uncompressed = struct.unpack_from("<QQ", data, toc + 16 * i)
        streams.append(zstandard.ZstdDecompressor().decompress(data[offset : offset + compressed]))
        assert len(streams[-1]) == uncompressed
        offset += compressed
    assert offset == len(data)
    header = dict(magic=magic, version=version, n=n, degree=degree, frac=frac, flags=flags, toc=toc)
    return {"header": header, "records": records, "streams": streams}


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_spz_v4_default_layout_and_axes_record(tmp_path, sh_degree):
    """Default: v4 (zstd), PLY axes on disk, declared by one SPZ_ADOBE_coordinate_system record (RDF = 6)."""
    pytest.importorskip("zstandard")
    n = 300
    splats = make_splats(n=n, sh_degree=sh_degree)
    write_spz(tmp_path / "a.spz", splats)
    v4 = _spz_v4(tmp_path / "a.spz")
    num_rest = (sh_degree + 1) ** 2 - 1
    assert v4["header"] == dict(magic=0x5053474E, version=4, n=n, degree=sh_degree, frac=12, flags=0x2, toc=44)
    assert v4["records"] == [(0xADBE0003, struct.pack("<I", 6))]
    sizes = [9 * n, n, 3 * n, 3 * n, 4 * n] + ([3 * num_rest * n] if num_rest else [])
    assert [len(b) for b in v4["streams"]] == sizes  # 5 streams at SH degree 0, as the reference
    first = v4["streams"][0][:9]
    fixed = [int.from_bytes(first[3 * i : 3 * i + 3], "little", signed=True) / 4096 for i in range(3)]
    assert fixed == pytest.approx(splats["means"][0].tolist(), abs=1 / 8192)  # PLY axes, not (x, -y, -z)
    back, axes = read_spz(tmp_path / "a.spz", default_axes="rub", return_axes=True)  # the record wins
    assert axes == "ply"
    assert_within(splats, back, spz_bounds(3, num_rest), "spz v4")
    assert quat_error(back["quats"], splats["quats"]).max() < 3e-3


def test_spz_rub_axes_option(tmp_path):
    """axes="rub": the spec's RUB on disk, no record; read back into our axes (v4 and v3)."""
    pytest.importorskip("zstandard")
    splats = make_splats(n=200, sh_degree=3)
    write_spz(tmp_path / "rub.spz", splats, axes="rub")
    v4 = _spz_v4(tmp_path / "rub.spz")
    assert v4["header"]["flags"] == 0 and v4["header"]["toc"] == 32 and v4["records"] == []
    first = v4["streams"][0][:9]
    fixed = [int.from_bytes(first[3 * i : 3 * i + 3], "little", signed=True) / 4096 for i in range(3)]
    x, y, z = splats["means"][0].tolist()
    assert fixed == pytest.approx([x, -y, -z], abs=1 / 8192)
    # no record: the reader assumes PLY axes (as the PlayCanvas tools) unless told RUB
    assert_within(rdf_to_rub(splats), read_spz(tmp_path / "rub.spz"), spz_bounds(3, 15), "rub file, ply default")
    assert_within(splats, read_spz(tmp_path / "rub.spz", default_axes="rub"), spz_bounds(3, 15), "rub file, rub default")
    write_spz(tmp_path / "rub3.spz", splats, version=3, axes="rub")
    raw = _spz_raw(tmp_path / "rub3.spz")
    assert struct.unpack_from("<IIIBBBB", raw)[5] == 0  # v3 carries no record
    assert_within(splats, read_spz(tmp_path / "rub3.spz", default_axes="rub"), spz_bounds(3, 15), "v3 rub")
    write_spz(tmp_path / "ply3.spz", splats, version=3)
    assert_within(splats, read_spz(tmp_path / "ply3.spz"), spz_bounds(3, 15), "v3 ply")
    with pytest.raises(InputError, match="axes must be one of ply, rub"):
        write_spz(tmp_path / "bad.spz", splats, axes="rdf")


def test_spz_v4_records_other_frames_and_corrupt_records(tmp_path):
    """Unknown records are skipped by length; an unsupported frame or a record overrunning the TOC is one error."""
    pytest.importorskip("zstandard")
    splats = make_splats(n=50, sh_degree=1)
    write_spz(tmp_path / "a.spz", splats)
    data = bytearray((tmp_path / "a.spz").read_bytes())

    def with_records(records: bytes, name: str) -> Path:
        header = bytearray(data[:32])
        header[14] = 0x2
        struct.pack_into("<I", header, 16, 32 + len(records))
        out = tmp_path / name
        out.write_bytes(bytes(header) + records + bytes(data[44:]))
        return out

    unknown = struct.pack("<II", 0x12340001, 3) + b"abc"
    rub = struct.pack("<III", 0xADBE0003, 4, 4)
    assert_within(rdf_to_rub(splats), read_spz(with_records(unknown + rub, "rub.spz")), spz_bounds(3, 3), "unknown + RUB record")
    assert_within(splats, read_spz(with_records(unknown, "none.spz")), spz_bounds(3, 3), "unknown record only")
    with pytest.raises(InputError, match="coordinate system 7"):
        read_spz(with_records(struct.pack("<III", 0xADBE0003, 4, 7), "luf.spz"))
    with pytest.raises(InputError, match="corrupt SPZ v4 extension records"):
        read_spz(with_records(struct.pack("<II", 0x12340001, 40) + b"abc", "over.spz"))


@pytest.mark.parametrize("options", [{}, {"version": 3}, {"version": 2}, {"axes": "rub"}, {"sh_bits": (5, 4)}])
def test_gsply_reads_our_spz_as_we_do(tmp_path, options):
    """A second, independent SPZ decoder (gsply 0.4.6, reads raw like the PlayCanvas tools) gives what our
    reader gives, value for value; and we read gsply's own SPZ files of a PLY within the format's bounds."""
    gsply = pytest.importorskip("gsply")
    pytest.importorskip("zstandard")
    splats = make_splats(n=300, sh_degree=3)
    path = tmp_path / "ours.spz"
    write_spz(path, splats, **options)
    theirs, ours = gsply.read_spz(path), read_spz(path)
    for key in ("means", "scales", "opacities", "sh0", "shN"):
        got = torch.from_numpy(np.asarray(getattr(theirs, key), dtype=np.float32)).reshape(ours[key].shape)
        assert torch.allclose(got, ours[key], atol=1e-5), (options, key)
    got_quats = torch.from_numpy(np.asarray(theirs.quats, dtype=np.float32))
    assert quat_error(got_quats, ours["quats"]).max() < 1e-5, options
    if options:
        return
    write_ply(tmp_path / "src.ply", splats)
    for version in (3, 4):
        gsply.write_spz(tmp_path / f"gsply_v{version}.spz", gsply.plyread(str(tmp_path / "src.ply")), version=version)
        back = read_spz(tmp_path / f"gsply_v{version}.spz")
        assert_within(splats, back, spz_bounds(3, 15), f"our reader <- gsply v{version}")


def test_rdf_to_rub_is_a_rotation_of_the_scene():
    """rdf_to_rub = rotation by 180° about x: positions, covariances and view-dependent colour all follow."""
    from gspruner.render.sh import spherical_harmonics
    from gsplat.utils import normalized_quat_to_rotmat

    splats = make_splats(n=20, sh_degree=3)
    flipped = rdf_to_rub(splats)
    P = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(flipped["means"], splats["means"] @ P)
    R = normalized_quat_to_rotmat(unit_quats(splats["quats"]).float())
    R_flipped = normalized_quat_to_rotmat(unit_quats(flipped["quats"]).float())
    assert torch.allclose(R_flipped, P @ R @ P, atol=1e-6)
    dirs = torch.randn(20, 3)
    coeffs = torch.cat([splats["sh0"], splats["shN"]], dim=1)
    coeffs_flipped = torch.cat([flipped["sh0"], flipped["shN"]], dim=1)
    assert torch.allclose(spherical_harmonics(3, dirs @ P, coeffs_flipped), spherical_harmonics(3, dirs, coeffs), atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(rdf_to_rub(flipped).values(), splats.values()))


def test_spz_size_well_under_raw(tmp_path):
    """Trained-like SH (small coefficients) quantize to few buckets, which gzip squeezes."""
    for sh_degree, raw_budget in ((0, 20), (3, 65)):
        splats = make_splats(n=4096, sh_degree=sh_degree, sh_std=0.05)
        path = tmp_path / f"sh{sh_degree}.spz"
        write_spz(path, splats, version=3, sh_bits=(5, 4))  # the reference encoder's buckets
        per_splat = os.path.getsize(path) / 4096
        assert len(_spz_raw(path)) == 16 + 4096 * raw_budget
        # SH0 of i.i.d. random attributes leaves gzip little (~18 B; a trained scene gives less); SH3 ~27 B
        assert per_splat < (0.95 if sh_degree == 0 else 0.5) * raw_budget, (sh_degree, per_splat)


def test_spz_full_sh_bits_round_trip_and_size(tmp_path):
    """Default 8-bit SH: error ≤ 0.5/128 on [-1, 1) (vs 8.5/128 bucketed), same layout, bigger after gzip;
    bucketed bytes are multiples of the bucket, and bad bit counts are one InputError."""
    splats = make_splats(n=4096, sh_degree=3, sh_std=0.05)
    full, bucketed = tmp_path / "full.spz", tmp_path / "bucketed.spz"
    write_spz(full, splats, version=3)
    write_spz(bucketed, splats, version=3, sh_bits=(5, 4))
    assert len(_spz_raw(full)) == len(_spz_raw(bucketed)) == 16 + 4096 * 65
    err_full = (read_spz(full)["shN"] - splats["shN"]).abs().max().item()
    err_bucketed = (read_spz(bucketed)["shN"] - splats["shN"]).abs().max().item()
    assert err_full <= 0.5 / 128 + 1e-6 < 4.5 / 128 - 1e-3 < err_bucketed <= 8.5 / 128 + 1e-6
    sh_bytes = np.frombuffer(_spz_raw(bucketed)[16 + 4096 * 20 :], dtype=np.uint8).reshape(4096, 15, 3)
    assert (sh_bytes[:, :3] % 8 == 0).all() and (sh_bytes[:, 3:] % 16 == 0).all()
    assert os.path.getsize(bucketed) < os.path.getsize(full) < 0.8 * 65 * 4096
    for bad in ((9, 8), (0, 4), (8,)):
        with pytest.raises(InputError, match="SH bits"):
            write_spz(tmp_path / "bad.spz", splats, sh_bits=bad)


def test_compressed_ply_sh_bytes_decode_nearest():
    """Each SH byte is the one whose decoded value (splat-transform's decoder, ends ±4 included) is nearest,
    checked against all 256 codes; within 1/64 away from the ends; 0 decodes to ±1/64."""
    v = np.concatenate([np.linspace(-4.5, 4.5, 20001), [0.0, -4.0, 4.0, -3.97, 3.97]])[:, None, None]
    codes = encode_sh_bytes(v)
    levels = decode_sh_byte(np.arange(256))
    best = np.abs(levels[None, :] - v[:, 0, 0, None]).min(axis=1)
    assert np.allclose(np.abs(decode_sh_byte(codes)[:, 0, 0] - v[:, 0, 0]), best, atol=1e-12)
    inner = np.abs(v[:, 0, 0]) <= 4 - 3 / 64
    assert np.abs(decode_sh_byte(codes) - v)[inner].max() <= 1 / 64 + 1e-12
    assert abs(decode_sh_byte(encode_sh_bytes(np.zeros((1, 1, 1))))[0, 0, 0]) == 1 / 64
    # the classic encoder trunc((v/8 + 0.5)·256) picks byte 0 (-4) for v = -3.97; the nearest is byte 1
    assert codes[-2, 0, 0] == 1 and decode_sh_byte(codes[-1, 0, 0]) == pytest.approx(3.953125)


def _view_error(sh_err: np.ndarray, means: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Mean over the views of the squared colour error Σ_k Y_k(d)·e_k, per splat and channel [N,3]."""
    d = torch.from_numpy(means[:, None] - centres[None])  # [N,C,3] camera -> splat
    basis = eval_sh_bases(3, d / d.norm(dim=-1, keepdim=True))[..., 1:]  # [N,C,15]
    colour = torch.einsum("nck,nkj->ncj", basis, torch.from_numpy(sh_err))  # [N,C,3]
    return (colour**2).mean(dim=1).numpy()


def test_compressed_ply_view_aware_sh_rounding(tmp_path):
    """With the training cameras, each SH byte is one of the two levels around its value, and the colour
    error seen from those cameras is never above nearest rounding's, and far below it for small SH."""
    g = np.random.default_rng(0)
    n = 2000
    means = g.normal(size=(n, 3))
    angles = np.linspace(0, 1.5, 12)
    centres = np.stack([4 * np.cos(angles), 4 * np.sin(angles), np.full(12, 1.0)], axis=1)  # an arc of cameras
    sh = np.concatenate([g.normal(scale=0.01, size=(n // 2, 15, 3)), g.uniform(-3.9, 3.9, size=(n // 2, 15, 3))])
    nearest = encode_sh_bytes(sh)
    aware = encode_sh_bytes(sh, means, centres)
    gap = np.abs(decode_sh_byte(aware) - sh)
    assert gap.max() <= 1 / 32 + 1e-12  # one level step (values inside ±(4 - 3/64))
    assert (aware != nearest).any()
    err_nearest = _view_error(decode_sh_byte(nearest) - sh, means, centres)
    err_aware = _view_error(decode_sh_byte(aware) - sh, means, centres)
    ridge = lambda c: 0.1 / (4 * np.pi) * ((decode_sh_byte(c) - sh) ** 2).sum(axis=1)  # the sphere term
    assert (err_aware + ridge(aware) <= err_nearest + ridge(nearest) + 1e-12).all()
    small = slice(0, n // 2)
    assert err_aware[small].mean() < 0.25 * err_nearest[small].mean()

    # the writer: same bytes, in the file's channel-major order; the reader decodes them
    splats = make_splats(n=300, sh_degree=3)
    path = tmp_path / "views.compressed.ply"
    write_compressed_ply(path, splats, view_points=centres)
    back = read_compressed_ply(path)
    assert_within(match(splats, back), back, dict(compressed_bounds(path), sh=1 / 32), "compressed-ply, view-aware SH")
    order = torch.cdist(back["means"].double(), splats["means"].double()).argmin(dim=1).numpy()
    expected = encode_sh_bytes(splats["shN"].numpy()[order], splats["means"].double().numpy()[order], centres)
    stored = np.stack([plyfile.PlyData.read(str(path))["sh"].data[f"f_rest_{i}"] for i in range(45)], axis=1)
    assert np.array_equal(stored, expected.transpose(0, 2, 1).reshape(300, 45))


def test_spz_positions_out_of_range_are_clamped_with_warning(tmp_path):
    splats = make_splats(n=10, sh_degree=0)
    splats["means"][3] = torch.tensor([3000.0, 0.0, 0.0])
    with pytest.warns(UserWarning, match="1 splats lie beyond SPZ's ±2048"):
        write_spz(tmp_path / "a.spz", splats)
    assert read_spz(tmp_path / "a.spz")["means"][3, 0] == pytest.approx(2048, abs=1e-3)


# --- .splat ---------------------------------------------------------------------------------------


def test_splat_round_trip_size_and_order(tmp_path):
    n = 500
    splats = make_splats(n=n, sh_degree=0)
    path = tmp_path / "scene.splat"
    with _no_warning():
        assert write_splat(path, splats) == n
    assert os.path.getsize(path) == 32 * n
    back = read_splat(path)
    assert back["shN"].shape == (n, 0, 3)
    key = (back["scales"].double().sum(dim=1).exp() * torch.sigmoid(back["opacities"].double())).numpy()
    ref = match(splats, back)
    true_key = (ref["scales"].double().sum(dim=1).exp() * torch.sigmoid(ref["opacities"].double())).numpy()
    assert np.all(np.diff(true_key) <= 0), "not sorted by descending exp(Σ scale)·sigmoid(opacity)"
    assert key[0] >= key[-1]
    assert_within(ref, back, SPLAT_BOUNDS, "splat")
    assert torch.equal(back["means"], ref["means"])  # float32, exact
    record = path.read_bytes()[:32]  # w first, q/|q|·128 + 128
    q = unit_quats(ref["quats"][:1])[0]
    assert list(record[28:32]) == [min(255, math.floor(c * 128 + 128.5)) for c in q.tolist()]


def test_splat_warns_when_dropping_sh(tmp_path):
    with pytest.warns(UserWarning, match=r"\.splat has no SH: dropped SH bands 1-3"):
        write_splat(tmp_path / "a.splat", make_splats(n=10, sh_degree=3))


# --- NaN handling and bad files ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["compressed-ply", "spz", "splat"])
def test_non_finite_splats_dropped_with_count(tmp_path, fmt):
    splats = make_splats(n=300, sh_degree=0)
    splats["means"][5, 1] = float("nan")
    splats["opacities"][17] = float("inf")  # gsplat 1.5.3 drops every splat for one of these
    splats["quats"][42] = 0.0
    path = tmp_path / f"a{FORMATS[fmt]}"
    with pytest.warns(UserWarning, match=r"dropped 3 of 300 splats \(2 with NaN/Inf values, 1 with a zero quaternion\)"):
        assert write_splats(path, splats, fmt) == 297
    back = read_splats(path)
    assert len(back["means"]) == 297 and torch.isfinite(back["means"]).all()

    bad = {k: v.clone() for k, v in splats.items()}
    bad["scales"][:] = float("nan")
    empty = tmp_path / f"empty{FORMATS[fmt]}"
    with pytest.raises(InputError, match="no valid splats to write"):
        write_splats(empty, bad, fmt)
    assert not empty.exists() and not list(tmp_path.glob(".*tmp"))


def _one_line(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message, message


@pytest.mark.parametrize("fmt", ["compressed-ply", "spz", "splat"])
def test_bad_files_raise_one_line_input_error(tmp_path, fmt):
    suffix = FORMATS[fmt]
    good = tmp_path / f"good{suffix}"
    write_splats(good, make_splats(n=300, sh_degree=0 if fmt == "splat" else 1), fmt)
    data = good.read_bytes()
    cases = {
        "empty": b"",
        "garbage": b"hello world, not a scene\n" * 10,
        "truncated": data[: len(data) // 2 + 1],
    }
    if fmt == "spz":
        write_spz(tmp_path / "v3.spz", make_splats(n=300, sh_degree=1), version=3)
        raw = gzip.decompress((tmp_path / "v3.spz").read_bytes())
        cases["bad magic"] = gzip.compress(b"XXXX" + raw[4:])
        cases["bad version"] = gzip.compress(raw[:4] + struct.pack("<I", 9) + raw[8:])
        cases["short payload"] = gzip.compress(raw[:-10])
        # v4: a stream cut short, a TOC pointing past the end, a stream that is not zstd
        cases["v4 short stream"] = data[:-10]
        cases["v4 toc past end"] = data[:16] + struct.pack("<I", len(data)) + data[20:]
        first_stream = 44 + 16 * 6
        cases["v4 bad stream"] = data[:first_stream] + b"XXXX" + data[first_stream + 4 :]
    if fmt == "compressed-ply":
        plain = tmp_path / "plain.ply"
        write_ply(plain, make_splats(n=5, sh_degree=0))
        cases["plain ply"] = plain.read_bytes()
    for name, content in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}{suffix}"
        path.write_bytes(content)
        with pytest.raises(InputError) as exc:
            read_splats(path, fmt)
        _one_line(exc, path)


# --- the export command ---------------------------------------------------------------------------


def _checkpoint(tmp_path: Path, splats: dict) -> Path:
    path = tmp_path / "run" / "ckpt" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save({"splats": splats, "config": {"sh_degree": 3}, "scene": {"data_dir": "x"}}, path)
    return path


def test_export_all_writes_every_format_and_a_size_table(tmp_path, capsys):
    splats = make_splats(n=512, sh_degree=3)
    ckpt = _checkpoint(tmp_path, splats)
    result = run_export(ExportConfig(ckpt=ckpt, format="all", out=tmp_path / "exports" / "scene"))
    out = capsys.readouterr()
    files = {r["format"]: Path(r["path"]) for r in result["rows"]}
    assert files == {fmt: tmp_path / "exports" / f"scene{suffix}" for fmt, suffix in FORMATS.items()}
    for fmt, path in files.items():
        assert path.is_file() and detect_format(path) == fmt
    rows = {r["format"]: r for r in result["rows"]}
    assert rows["splat"]["bytes_per_splat"] == 32.0
    assert rows["ply"]["bytes"] == os.path.getsize(files["ply"])
    assert rows["compressed-ply"]["bytes_per_splat"] < rows["ply"]["bytes_per_splat"] / 3
    for r in result["rows"]:
        assert r["num_splats"] == 512 and r["mb"] == pytest.approx(r["bytes"] / 1e6)
        assert r["format"] in out.out and str(r["bytes"]) in out.out
    assert "B/splat" in out.out and "MB" in out.out and "×smaller" in out.out
    assert result["inria_ply_bytes"] == 512 * 62 * 4
    assert rows["ply"]["ratio_to_inria_ply"] == pytest.approx(1.0, rel=0.02)  # our PLY is the INRIA layout (+ its header)
    for r in result["rows"]:
        assert r["ratio_to_inria_ply"] == pytest.approx(512 * 248 / r["bytes"])
    assert "dropped SH bands 1-3" in out.err  # the .splat warning, as one line
    assert torch.equal(read_splats(files["ply"])["shN"], splats["shN"])

    # into an existing folder: named after the input
    (tmp_path / "folder").mkdir()
    result = run_export(ExportConfig(ckpt=ckpt, format="spz", out=tmp_path / "folder"))
    assert Path(result["rows"][0]["path"]) == tmp_path / "folder" / "last.spz"


def test_export_sh_degree_drops_bands(tmp_path, capsys):
    splats = make_splats(n=300, sh_degree=3)
    src = tmp_path / "in.ply"
    write_ply(src, splats)
    run_export(ExportConfig(ply=src, format="all", out=tmp_path / "sh0", sh_degree=0))
    assert read_splats(tmp_path / "sh0.ply")["shN"].shape == (300, 0, 3)
    assert read_splats(tmp_path / "sh0.compressed.ply")["shN"].shape == (300, 0, 3)
    assert "sh" not in [e.name for e in plyfile.PlyData.read(str(tmp_path / "sh0.compressed.ply")).elements]
    assert read_splats(tmp_path / "sh0.spz")["shN"].shape == (300, 0, 3)
    assert "dropped SH" not in capsys.readouterr().err  # nothing left to drop for .splat
    result = run_export(ExportConfig(ply=src, format="ply", out=tmp_path / "sh1.ply", sh_degree=1))
    back = read_splats(tmp_path / "sh1.ply")
    assert torch.equal(back["shN"], splats["shN"][:, :3]) and result["sh_degree"] == 1
    assert os.path.getsize(tmp_path / "sh1.ply") < os.path.getsize(src)
    # converting a compressed file back to another format works too (input by content)
    run_export(ExportConfig(ply=tmp_path / "sh0.spz", format="splat", out=tmp_path / "from_spz.splat"))
    assert os.path.getsize(tmp_path / "from_spz.splat") == 32 * 300


def test_export_compressed_ply_sh_rounding_uses_training_cameras(tmp_path, tiny_scene, capsys):
    """--sh-rounding views (default) rounds for the scene's training cameras (the checkpoint's scene, or
    --data-dir); without a scene it says so and rounds to nearest; --sh-rounding nearest ignores the scene."""
    from gspruner.data import load_scene
    from gspruner.export.command import training_centres

    splats = make_splats(n=300, sh_degree=3)
    ckpt = _checkpoint(tmp_path, splats)  # records scene "x", which does not exist
    run_export(ExportConfig(ckpt=ckpt, format="compressed-ply", out=tmp_path / "no_scene.compressed.ply"))
    assert "rounded to nearest" in capsys.readouterr().err
    run_export(ExportConfig(ckpt=ckpt, format="compressed-ply", out=tmp_path / "views.compressed.ply", data_dir=tiny_scene))
    run_export(ExportConfig(ckpt=ckpt, format="compressed-ply", out=tmp_path / "nearest.compressed.ply",
                            data_dir=tiny_scene, sh_rounding="nearest"))
    write_compressed_ply(tmp_path / "direct.compressed.ply", splats,
                         view_points=training_centres(load_scene(tiny_scene, data_factor=1, test_every=8)))
    data = {name: (tmp_path / f"{name}.compressed.ply").read_bytes() for name in ("no_scene", "views", "nearest", "direct")}
    assert data["views"] == data["direct"] and data["nearest"] == data["no_scene"] != data["views"]
    with pytest.raises(InputError, match="does not exist"):
        run_export(ExportConfig(ckpt=ckpt, format="compressed-ply", out=tmp_path / "x.compressed.ply", data_dir=tmp_path / "missing"))


def test_export_rejects_bad_arguments(tmp_path):
    src = tmp_path / "in.ply"
    write_ply(src, make_splats(n=10, sh_degree=0))
    with pytest.raises(InputError, match="exactly one of --ckpt"):
        run_export(ExportConfig(format="ply"))
    with pytest.raises(InputError, match="exactly one of --ckpt"):
        run_export(ExportConfig(ckpt=src, ply=src))
    with pytest.raises(InputError, match=r"should be named \*\.spz"):
        run_export(ExportConfig(ply=src, format="spz", out=tmp_path / "x.ply"))
    with pytest.raises(InputError, match="would overwrite the input"):
        run_export(ExportConfig(ply=src, format="ply"))
    with pytest.raises(InputError, match="--sh-degree must be"):
        run_export(ExportConfig(ply=src, sh_degree=-1))
    with pytest.raises(InputError, match="missing.pt: checkpoint not found"):
        run_export(ExportConfig(ckpt=tmp_path / "missing.pt"))
    for bad in (0, 70000):  # checked before anything is written
        with pytest.raises(InputError, match="--sog-palette must be in 1..65536"):
            run_export(ExportConfig(ply=src, format="all", out=tmp_path / "out" / "scene", sog_palette=bad))
    assert not (tmp_path / "out").exists()
    run_export(ExportConfig(ply=src, format="sog", out=tmp_path / "p.sog", sog_palette=4))
    assert len(read_splats(tmp_path / "p.sog")["means"]) == 10


def test_export_help_explains_every_option():
    import dataclasses

    import tyro

    with pytest.raises(SystemExit) as exc, _capture() as out:
        tyro.cli(ExportConfig, args=["--help"])
    assert exc.value.code == 0
    for f in dataclasses.fields(ExportConfig):
        assert "--" + f.name.replace("_", "-") in out.getvalue()


class _capture:
    def __enter__(self):
        import contextlib
        import io

        self.buf = io.StringIO()
        self._cm = contextlib.redirect_stdout(self.buf)
        self._cm.__enter__()
        return self.buf

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


# --- interoperability with splat-transform 3.7.0 ------------------------------------------------



@pytest.mark.parametrize("sh_degree", [0, 3])
def test_splat_transform_reads_our_files(tmp_path, splat_transform, sh_degree):
    """splat-transform converts each of our files to a plain PLY that matches our splats within the
    format's quantization error: our default SPZ (v4, PLY axes + record) and v3 come back in our axes; an
    axes="rub" file comes back turned (splat-transform decodes SPZ raw), hence rdf_to_rub there."""
    n = 600
    splats = make_splats(n=n, sh_degree=sh_degree)
    num_rest = (sh_degree + 1) ** 2 - 1
    files = {}
    for fmt in ("ply", "compressed-ply", "spz", "splat"):  # sog: tests/test_export_sog.py; glb: splat-transform 3.7.0 does not read it
        suffix = FORMATS[fmt]
        files[fmt] = tmp_path / f"ours{suffix}"
        with pytest.warns(UserWarning) if (fmt == "splat" and sh_degree) else _no_warning():
            write_splats(files[fmt], splats, fmt)
    files["spz-v2"] = tmp_path / "ours_v2.spz"
    write_spz(files["spz-v2"], splats, version=2)
    files["spz-v3"] = tmp_path / "ours_v3.spz"
    write_spz(files["spz-v3"], splats, version=3)
    files["spz-rub"] = tmp_path / "ours_rub.spz"
    write_spz(files["spz-rub"], splats, axes="rub")
    files["spz-bucketed"] = tmp_path / "ours_bucketed.spz"
    write_spz(files["spz-bucketed"], splats, sh_bits=(5, 4))
    files["compressed-ply-views"] = tmp_path / "ours_views.compressed.ply"
    write_compressed_ply(files["compressed-ply-views"], splats, view_points=np.array([[0.0, 0.0, -8.0], [3.0, -2.0, -7.0]]))
    bounds = {
        "ply": dict(position=0, scale=0, dc=0, opacity=0, rotation=1e-6, sh=0),
        "compressed-ply": compressed_bounds(files["compressed-ply"]),
        "spz": spz_bounds(3, num_rest),
        "spz-v2": spz_bounds(2, num_rest),
        "spz-v3": spz_bounds(3, num_rest),
        "spz-rub": spz_bounds(3, num_rest),
        "spz-bucketed": spz_bounds(3, num_rest, (5, 4)),
        "compressed-ply-views": dict(compressed_bounds(files["compressed-ply-views"]), sh=1 / 32),
        # splat-transform decodes .splat rotations as u8/255·2 - 1 (we and antimatter15: (u8 - 128)/128)
        "splat": dict(SPLAT_BOUNDS, rotation=4 / 128),
    }
    for fmt, path in files.items():
        out = tmp_path / f"st_{path.name}.ply"
        log = splat_transform(path, out)
        assert f"{n} gaussians" in log, log
        got = read_ply(out)
        expected_rest = 0 if fmt == "splat" else num_rest
        assert got["shN"].shape == (n, expected_rest, 3), fmt
        ours = read_splats(path)
        ref = rdf_to_rub(splats) if fmt == "spz-rub" else splats
        if fmt.startswith("compressed-ply"):  # file order is kept: the per-chunk bounds apply row by row
            assert torch.allclose(got["means"], ours["means"], atol=1e-5)
            assert_within(match(ref, got), got, bounds[fmt], f"splat-transform <- our {fmt}")
        else:
            assert_within(match(ref, got), got, bounds[fmt], f"splat-transform <- our {fmt}")
        # and both decoders agree closely (SH: the same levels)
        ours_axes = ours  # an axes="rub" file has no record: we read it raw, as splat-transform does
        assert torch.allclose(got["means"], ours_axes["means"], atol=1e-5), fmt
        assert torch.allclose(got["shN"], ours_axes["shN"][:, :expected_rest], atol=1e-6), fmt


def test_we_read_splat_transform_files(tmp_path, splat_transform):
    """Our readers decode splat-transform's compressed PLY and SPZ (v3 gzip and v4 zstd, stored in PLY axes)."""
    pytest.importorskip("zstandard")
    n = 600
    splats = make_splats(n=n, sh_degree=3)
    src = tmp_path / "src.ply"
    write_ply(src, splats)
    splat_transform(src, tmp_path / "st.compressed.ply")
    back = read_splats(tmp_path / "st.compressed.ply")
    assert_within(match(splats, back), back, compressed_bounds(tmp_path / "st.compressed.ply"), "our reader <- splat-transform compressed-ply")
    for version in (3, 4):
        out = tmp_path / f"st_v{version}.spz"
        splat_transform("--spz-version", str(version), src, out)
        back = read_spz(out)  # splat-transform writes SPZ in PLY axes without a record: our default reading
        assert_within(splats, back, spz_bounds(3, 15, (5, 4)), f"our reader <- splat-transform spz v{version}")


# --- what the files look like: renders of each file against the checkpoint ---------------------


@pytest.fixture(scope="module")
def trained_tiny(tiny_scene, tmp_path_factory):
    """A short SH3 run on the tiny scene without densification (its 1,500 SfM points: splat-transform's CPU k-means
    for SOG takes minutes on the ~50k a default run grows): (splats, scene, psnr(splats) on the test views)."""
    from gspruner.strategies import NoStrategyConfig
    from gspruner.data import load_scene
    from gspruner.evaluation import evaluate
    from gspruner.trainer import TrainConfig, Trainer
    from gspruner.checkpoint import load_checkpoint, splats_from_state

    r = tmp_path_factory.mktemp("export_render") / "run"
    Trainer(TrainConfig(data_dir=tiny_scene, result_dir=r, max_steps=300, sh_degree_interval=60, device="cpu",
                        strategy=NoStrategyConfig(),
                        progress=False, lpips=False, save_renders=False)).train()  # fmt: skip
    state = load_checkpoint(r / "ckpt" / "last.pt")["splats"]
    splats = {k: state[k].detach().float().cpu() for k in ("means", "scales", "quats", "opacities", "sh0", "shN")}
    scene = load_scene(tiny_scene, data_factor=1, test_every=8)

    def psnr(s: dict) -> float:
        return evaluate(splats_from_state(s, "cpu"), scene, "cpu", 3, split="test", with_lpips=False)["psnr"]

    return splats, scene, psnr


def test_every_format_renders_like_the_checkpoint(tmp_path, trained_tiny, request):
    """Each of our files, read back by our reader and (where it reads the format) by splat-transform via a
    PLY, renders the test views within 0.1 dB of the checkpoint; and splat-transform's own .sog/.spz of our
    PLY read by us render as its own round trip does (SH-lossy ones included)."""
    from gspruner.export.command import training_centres
    from gspruner.export.formats import writer_options

    splats, scene, psnr = trained_tiny
    reference = psnr(splats)
    assert reference > 18, reference  # a trained model, so 0.1 dB means something
    st = request.getfixturevalue("splat_transform") if SPLAT_TRANSFORM.exists() and shutil.which("node") else None
    for fmt in ("ply", "sog", "spz", "glb", "compressed-ply"):
        path = tmp_path / f"ours{FORMATS[fmt]}"
        write_splats(path, splats, fmt, **writer_options(fmt, view_points=training_centres(scene)))
        got = psnr(read_splats(path))
        assert abs(got - reference) <= 0.1, (fmt, got, reference)
        if st is not None and fmt != "glb":  # splat-transform 3.7.0 does not read .glb
            st(path, tmp_path / f"st_{fmt}.ply")
            got_st = psnr(read_ply(tmp_path / f"st_{fmt}.ply"))
            assert abs(got_st - reference) <= 0.1, (fmt, "via splat-transform", got_st, reference)
    if st is None:
        return
    for fmt in ("sog", "spz"):
        theirs = tmp_path / f"theirs{FORMATS[fmt]}"
        st("-g", "cpu", tmp_path / "ours.ply", theirs)
        st(theirs, tmp_path / f"theirs_{fmt}.ply")
        assert abs(psnr(read_splats(theirs)) - psnr(read_ply(tmp_path / f"theirs_{fmt}.ply"))) <= 0.01, fmt
