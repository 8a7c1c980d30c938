"""glTF binary with KHR_gaussian_splatting (`gspruner.export.gltf`): round trips, the file layout the spec
asks for, the Khronos glTF-Validator, the reader on hand-made files (strided, quantised, sparse, node
transforms), bad input, and agreement with splat-transform 3.7.0's .glb writer (values and axes)."""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from gspruner.errors import InputError
from gspruner.export import write_ply
from gspruner.export.gltf import ATTRIBUTE_PREFIX, EXTENSION, read_glb, sh_attribute_names, write_glb
from gspruner.render.sh import eval_sh_bases
from test_export_formats import SH_C0, make_splats, quat_error

REPO = Path(__file__).resolve().parents[1]
SPLAT_TRANSFORM = REPO / ".node" / "node_modules" / ".bin" / "splat-transform"
GLTF_VALIDATOR = REPO / ".node" / "node_modules" / "gltf-validator"
FLOAT, UNSIGNED_BYTE, SHORT = 5126, 5121, 5122
CORE = ["POSITION", "COLOR_0"] + [ATTRIBUTE_PREFIX + s for s in ("ROTATION", "SCALE", "OPACITY")]
PLY_TO_GLTF = torch.tensor([-1.0, -1.0, 1.0])  # 180° about z, splat-transform's PLY -> glTF change


# --- GLB helpers (independent of the module under test) --------------------------------------------


def parse_glb(path: Path) -> tuple[dict, bytes, bytes]:
    """(JSON, BIN chunk, raw JSON chunk bytes) of a GLB file, checking its header and chunk layout."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    raw_json = data[20 : 20 + json_len]
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0
    assert 28 + json_len + bin_len == len(data)
    return json.loads(raw_json), data[28 + json_len :], raw_json


def pack_glb(gltf: dict | bytes, binary: bytes | None) -> bytes:
    """A GLB of a glTF JSON (or raw bytes for the JSON chunk) and a BIN chunk (None: no BIN chunk)."""
    raw = gltf if isinstance(gltf, bytes) else json.dumps(gltf).encode()
    raw += b" " * (-len(raw) % 4)
    chunks = struct.pack("<II", len(raw), 0x4E4F534A) + raw
    if binary is not None:
        binary += b"\0" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def attribute(gltf: dict, binary: bytes, name: str) -> np.ndarray:
    """A tightly packed float/ubyte attribute as stored: [count, components]."""
    acc = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"][name]]
    view = gltf["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    dtype = {FLOAT: "<f4", UNSIGNED_BYTE: "u1"}[acc["componentType"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(binary, dtype=dtype, count=acc["count"] * width, offset=start).reshape(-1, width)


def unit_xyzw(q: torch.Tensor) -> torch.Tensor:
    """Our wxyz quaternions as the spec's unit xyzw."""
    q = q.double() / q.double().norm(dim=1, keepdim=True)
    return q[:, [1, 2, 3, 0]]


def same_rotation(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Largest component difference of two sets of quaternions (any order) after normalising, up to sign."""
    a, b = (torch.as_tensor(np.array(v, dtype=np.float64)) if isinstance(v, np.ndarray) else v.double() for v in (a, b))
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    sign = torch.where((a * b).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    return (a - sign * b).abs().max().item()


def assert_round_trip(ref: dict, got: dict, what: str) -> None:
    """float32 storage: positions and SH exact; log scale, quaternion, sigmoid(opacity) to float32 rounding."""
    n = len(ref["means"])
    for key in ref:
        assert got[key].dtype == torch.float32 and got[key].shape == ref[key].shape, (what, key)
    assert torch.equal(got["means"], ref["means"]), what
    assert torch.equal(got["sh0"], ref["sh0"]) and torch.equal(got["shN"], ref["shN"]), what
    assert (got["scales"].double() - ref["scales"].double()).abs().max() <= 1e-6 * max(1.0, ref["scales"].abs().max()), what
    assert quat_error(got["quats"], ref["quats"]).max() <= 1e-6, what
    alpha = torch.sigmoid(ref["opacities"].double())
    assert (torch.sigmoid(got["opacities"].double()) - alpha).abs().max() <= 1e-7, what
    assert n == len(got["means"])


# --- round trips and layout ---------------------------------------------------------------------


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_round_trip(tmp_path, sh_degree):
    splats = make_splats(n=500, sh_degree=sh_degree, seed=sh_degree)
    path = tmp_path / "scene.glb"
    assert write_glb(path, splats) == 500
    assert_round_trip(splats, read_glb(path), f"SH{sh_degree}")
    # float32 throughout: 60 bytes per splat at SH0 plus 36 per degree-1..3 coefficient (12 B each)
    gltf, binary, _ = parse_glb(path)
    assert len(binary) == 500 * (60 + 12 * ((sh_degree + 1) ** 2 - 1))


def test_extreme_values_round_trip(tmp_path):
    """Opacity logits beyond what float32 sigmoid resolves come back finite (clamped 2^-25 off 0 and 1),
    huge and tiny scales stay finite, axis-aligned quaternions keep their rotation."""
    splats = make_splats(n=8, sh_degree=1)
    splats["opacities"] = torch.tensor([-200.0, -30.0, -17.0, 0.0, 17.0, 30.0, 200.0, 4.0])
    splats["scales"][:, 0] = torch.tensor([-120.0, -80.0, -20.0, 0.0, 20.0, 80.0, 95.0, 1.0])
    splats["quats"][:4] = torch.eye(4)
    write_glb(tmp_path / "x.glb", splats)
    got = read_glb(tmp_path / "x.glb")
    assert all(torch.isfinite(v).all() for v in got.values())
    assert got["opacities"].abs().max() <= math.log(2.0**25) + 1e-3
    assert (torch.sigmoid(got["opacities"].double()) - torch.sigmoid(splats["opacities"].double())).abs().max() < 1e-7
    assert quat_error(got["quats"], splats["quats"]).max() <= 1e-7
    gltf, binary, _ = parse_glb(tmp_path / "x.glb")
    assert np.isfinite(attribute(gltf, binary, ATTRIBUTE_PREFIX + "SCALE")).all()


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_json_and_layout(tmp_path, sh_degree):
    splats = make_splats(n=300, sh_degree=sh_degree)
    path = tmp_path / "scene.glb"
    write_glb(path, splats)
    gltf, binary, raw_json = parse_glb(path)

    assert raw_json.rstrip(b" ").endswith(b"}") and set(raw_json[len(raw_json.rstrip(b" ")) :]) <= {0x20}
    assert gltf["asset"]["version"] == "2.0"
    assert gltf["extensionsUsed"] == [EXTENSION] and "extensionsRequired" not in gltf
    (primitive,) = gltf["meshes"][0]["primitives"]
    assert primitive["mode"] == 0  # POINTS
    ext = primitive["extensions"][EXTENSION]
    assert ext == {"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective", "sortingMethod": "cameraDistance"}
    assert gltf["scenes"][gltf["scene"]]["nodes"] == [0] and gltf["nodes"][0] == {"mesh": 0}

    attributes = primitive["attributes"]
    assert list(attributes) == CORE + sh_attribute_names(sh_degree)
    assert sh_attribute_names(1) == [ATTRIBUTE_PREFIX + f"SH_DEGREE_{l}_COEF_{n}" for l, n in [(0, 0), (1, 0), (1, 1), (1, 2)]]
    spec_types = {"POSITION": ("VEC3", FLOAT), "COLOR_0": ("VEC4", UNSIGNED_BYTE), ATTRIBUTE_PREFIX + "ROTATION": ("VEC4", FLOAT),
                  ATTRIBUTE_PREFIX + "SCALE": ("VEC3", FLOAT), ATTRIBUTE_PREFIX + "OPACITY": ("SCALAR", FLOAT)}  # fmt: skip
    for name, index in attributes.items():
        acc = gltf["accessors"][index]
        assert (acc["type"], acc["componentType"]) == spec_types.get(name, ("VEC3", FLOAT)), name
        assert acc["count"] == 300 and acc.get("normalized", False) == (name == "COLOR_0")
        view = gltf["bufferViews"][acc["bufferView"]]
        assert view["byteOffset"] % 4 == 0 and view["target"] == 34962 and "byteStride" not in view
        assert view["byteOffset"] + view["byteLength"] <= gltf["buffers"][0]["byteLength"] <= len(binary)

    n = 300
    positions = attribute(gltf, binary, "POSITION")
    expected = (splats["means"] * PLY_TO_GLTF).numpy()
    assert np.array_equal(positions, expected)  # the axis change, exactly
    pos_acc = gltf["accessors"][attributes["POSITION"]]
    assert pos_acc["min"] == positions.min(axis=0).tolist() and pos_acc["max"] == positions.max(axis=0).tolist()

    rotation = attribute(gltf, binary, ATTRIBUTE_PREFIX + "ROTATION")
    assert np.abs(np.linalg.norm(rotation.astype(np.float64), axis=1) - 1).max() < 1e-6  # unit quaternions
    r = torch.tensor([0.0, 0.0, 1.0, 0.0])  # xyzw of the 180° turn about z
    q = unit_xyzw(splats["quats"])
    turned = torch.stack([  # r ⊗ q in xyzw
        r[3] * q[:, 0] + r[0] * q[:, 3] + r[1] * q[:, 2] - r[2] * q[:, 1],
        r[3] * q[:, 1] - r[0] * q[:, 2] + r[1] * q[:, 3] + r[2] * q[:, 0],
        r[3] * q[:, 2] + r[0] * q[:, 1] - r[1] * q[:, 0] + r[2] * q[:, 3],
        r[3] * q[:, 3] - r[0] * q[:, 0] - r[1] * q[:, 1] - r[2] * q[:, 2]], dim=1)  # fmt: skip
    assert same_rotation(rotation, turned) < 1e-6
    scale = attribute(gltf, binary, ATTRIBUTE_PREFIX + "SCALE")
    assert (scale >= 0).all() and np.allclose(scale, splats["scales"].exp().numpy(), rtol=1e-6, atol=0)
    opacity = attribute(gltf, binary, ATTRIBUTE_PREFIX + "OPACITY")[:, 0]
    assert ((opacity >= 0) & (opacity <= 1)).all()
    assert np.allclose(opacity, torch.sigmoid(splats["opacities"]).numpy(), atol=1e-7)
    dc = attribute(gltf, binary, ATTRIBUTE_PREFIX + "SH_DEGREE_0_COEF_0")
    assert np.array_equal(dc, splats["sh0"].reshape(n, 3).numpy())  # raw f_dc: colour = SH_C0·f_dc + 0.5
    if sh_degree:  # degree 1 after the turn: (y, z, x) terms -> (-, +, -); coefficient order m = -1, 0, 1
        for coef, sign in enumerate([-1, 1, -1]):
            got = attribute(gltf, binary, ATTRIBUTE_PREFIX + f"SH_DEGREE_1_COEF_{coef}")
            assert np.array_equal(got, sign * splats["shN"][:, coef].numpy())
    colour = attribute(gltf, binary, "COLOR_0").astype(np.float64) / 255
    srgb = np.clip(SH_C0 * splats["sh0"].reshape(n, 3).double().numpy() + 0.5, 0, 1)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    assert np.abs(colour[:, :3] - linear).max() <= 0.5 / 255 + 1e-9
    assert np.abs(colour[:, 3] - torch.sigmoid(splats["opacities"]).numpy()).max() <= 0.5 / 255 + 1e-6


def test_sh_follow_the_scene(tmp_path):
    """The stored SH give, in glTF axes, the colour the original gives in PLY axes for the same direction
    (the spec's basis equals gsplat's, so colours agree when the coefficients were turned with the scene)."""
    splats = make_splats(n=50, sh_degree=3)
    write_glb(tmp_path / "s.glb", splats)
    gltf, binary, _ = parse_glb(tmp_path / "s.glb")
    stored = np.stack([attribute(gltf, binary, name) for name in sh_attribute_names(3)], axis=1)  # [N,16,3]
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=1)
    original = torch.cat([splats["sh0"], splats["shN"]], dim=1).double()
    colour_ply = (eval_sh_bases(3, dirs)[:, :, None] * original).sum(dim=1)
    colour_gltf = (eval_sh_bases(3, dirs * PLY_TO_GLTF.double())[:, :, None] * torch.from_numpy(stored).double()).sum(dim=1)
    assert torch.allclose(colour_ply, colour_gltf, atol=1e-5)


def test_nan_splats_dropped(tmp_path):
    splats = make_splats(n=20, sh_degree=1)
    splats["means"][3, 1] = float("nan")
    splats["quats"][5] = 0.0
    with pytest.warns(UserWarning, match="dropped 2 of 20"):
        assert write_glb(tmp_path / "a.glb", splats) == 18
    keep = [i for i in range(20) if i not in (3, 5)]
    assert_round_trip({k: v[keep] for k, v in splats.items()}, read_glb(tmp_path / "a.glb"), "nan")


# --- glTF-Validator -----------------------------------------------------------------------------

VALIDATE_JS = """
const validator = require(process.argv[2]);
const bytes = new Uint8Array(require('fs').readFileSync(process.argv[3]));
validator.validateBytes(bytes, {maxIssues: 1000}).then(
    (report) => console.log(JSON.stringify(report)),
    (error) => { console.error(String(error)); process.exit(1); });
"""


@pytest.fixture(scope="module")
def validate(tmp_path_factory):
    if shutil.which("node") is None or not (GLTF_VALIDATOR / "package.json").exists():
        pytest.skip("node or .node/node_modules/gltf-validator is missing (npm install --prefix .node gltf-validator)")
    script = tmp_path_factory.mktemp("validator") / "validate.cjs"
    script.write_text(VALIDATE_JS)

    def run(path: Path) -> dict:
        proc = subprocess.run(["node", str(script), str(GLTF_VALIDATOR), str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return run


def extension_attribute_errors(report: dict) -> tuple[list[dict], list[dict]]:
    """(errors the validator raises because it predates extension-named attributes, all other errors).

    gltf-validator 2.0.0-dev.3.10 (the newest on npm) accepts only core and `_`-prefixed attribute names:
    every `KHR_gaussian_splatting:*` semantic is MESH_PRIMITIVE_INVALID_ATTRIBUTE (glTF-Validator issue #252,
    pending the core-spec change KhronosGroup/glTF#2514), for splat-transform's files as for ours."""
    errors = [m for m in report["issues"]["messages"] if m["severity"] == 0]
    known = [m for m in errors if m["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE" and m["pointer"].split("/")[-1].startswith(ATTRIBUTE_PREFIX)]
    return known, [m for m in errors if m not in known]


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_gltf_validator(tmp_path, validate, sh_degree, record_property):
    path = tmp_path / f"sh{sh_degree}.glb"
    write_glb(path, make_splats(n=400, sh_degree=sh_degree))
    report = validate(path)
    issues = report["issues"]
    known, others = extension_attribute_errors(report)
    summary = sorted({(m["code"], m["severity"]) for m in issues["messages"]})
    record_property("validator_issues", summary)
    print(f"gltf-validator {report.get('validatorVersion')} on SH{sh_degree}: {issues['numErrors']} errors, "
          f"{issues['numWarnings']} warnings, {issues['numInfos']} infos: {summary}")  # fmt: skip
    assert others == [], others
    assert sorted(m["pointer"].split("/")[-1] for m in known) == sorted(CORE[2:] + sh_attribute_names(sh_degree))
    assert issues["numWarnings"] == 0
    assert [m["code"] for m in issues["messages"] if m["severity"] > 0] == ["UNSUPPORTED_EXTENSION"]
    assert report["info"]["totalVertexCount"] == 400 and report["info"]["drawCallCount"] == 1

    # with the attribute names made application-specific (`_` prefix) the validator checks every accessor
    # (bounds, alignment, float values, POSITION min/max) and finds nothing at all
    gltf, binary, _ = parse_glb(path)
    primitive = gltf["meshes"][0]["primitives"][0]
    primitive["attributes"] = {("_" + k if k.startswith(ATTRIBUTE_PREFIX) else k): v for k, v in primitive["attributes"].items()}
    renamed = tmp_path / "renamed.glb"
    renamed.write_bytes(pack_glb(gltf, binary))
    report = validate(renamed)
    assert report["issues"]["numErrors"] == 0 and report["issues"]["numWarnings"] == 0, report["issues"]["messages"]


# --- the reader on files written by hand ---------------------------------------------------------


def quantised_file(path: Path, splats: dict) -> dict:
    """A GLB of `splats` (already in glTF axes) the way a compressing writer might store it: POSITION and
    ROTATION (short normalized) interleaved in one strided view, OPACITY ubyte normalized with a sparse
    substitution, SCALE ushort (not normalized: whole metres), SH0 float. Returns the stored values."""
    n = len(splats["means"])
    q = unit_xyzw(splats["quats"]).numpy()
    rot_i16 = np.round(q * 32767).astype("<i2")
    record = np.dtype([("pos", "<f4", 3), ("rot", "<i2", 4)])  # 20-byte stride
    interleaved = np.zeros(n, dtype=record)
    interleaved["pos"], interleaved["rot"] = splats["means"].numpy(), rot_i16
    alpha_u8 = np.round(torch.sigmoid(splats["opacities"]).numpy() * 255).astype("u1")
    sparse_rows, sparse_alpha = np.array([1, 4], dtype="<u2"), np.array([0, 255], dtype="u1")
    scale_u16 = np.maximum(np.round(splats["scales"].exp().numpy()), 1).astype("<u2")
    dc = splats["sh0"].reshape(n, 3).numpy().astype("<f4")
    # vertex attribute elements start on 4-byte boundaries (glTF 2.0 §3.6.2.4): strides 4 and 8
    alpha_strided, scale_strided = np.zeros((n, 4), dtype="u1"), np.zeros((n, 4), dtype="<u2")
    alpha_strided[:, 0], scale_strided[:, :3] = alpha_u8, scale_u16
    blobs = [interleaved.tobytes(), alpha_strided.tobytes(), sparse_rows.tobytes(), sparse_alpha.tobytes(),
             scale_strided.tobytes(), dc.tobytes()]  # fmt: skip
    views, offset = [], 0
    binary = b""
    for blob in blobs:
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(blob)})
        padded = blob + b"\0" * (-len(blob) % 4)
        binary += padded
        offset += len(padded)
    views[0]["byteStride"], views[1]["byteStride"], views[4]["byteStride"] = record.itemsize, 4, 8
    pos = splats["means"].numpy()
    gltf = {
        "asset": {"version": "2.0"},
        "extensionsUsed": [EXTENSION, "KHR_mesh_quantization"],
        "extensionsRequired": ["KHR_mesh_quantization"],
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
        "accessors": [
            {"bufferView": 0, "componentType": FLOAT, "count": n, "type": "VEC3", "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
            {"bufferView": 0, "byteOffset": 12, "componentType": SHORT, "normalized": True, "count": n, "type": "VEC4"},
            {"bufferView": 1, "componentType": UNSIGNED_BYTE, "normalized": True, "count": n, "type": "SCALAR",
             "sparse": {"count": 2, "indices": {"bufferView": 2, "componentType": 5123}, "values": {"bufferView": 3}}},
            {"bufferView": 4, "componentType": 5123, "count": n, "type": "VEC3"},
            {"bufferView": 5, "componentType": FLOAT, "count": n, "type": "VEC3"},
        ],
        "meshes": [{"primitives": [{"mode": 0, "attributes": {
            "POSITION": 0, ATTRIBUTE_PREFIX + "ROTATION": 1, ATTRIBUTE_PREFIX + "OPACITY": 2,
            ATTRIBUTE_PREFIX + "SCALE": 3, ATTRIBUTE_PREFIX + "SH_DEGREE_0_COEF_0": 4},
            "extensions": {EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}}}]}],
    }  # fmt: skip
    path.write_bytes(pack_glb(gltf, binary))
    alpha_u8[sparse_rows] = sparse_alpha
    return {"rot": rot_i16, "alpha": alpha_u8, "scale": scale_u16}


def test_reader_strided_quantised_sparse(tmp_path, validate):
    splats = make_splats(n=40, sh_degree=0)
    splats["scales"] = splats["scales"].clamp(min=0.0) + 1.0  # whole-metre scales survive the ushort
    w, x, y, z = splats["quats"].unbind(1)
    gltf_axes = dict(splats, means=splats["means"] * PLY_TO_GLTF, quats=torch.stack([-z, -y, x, w], 1))  # r ⊗ q
    path = tmp_path / "quantised.glb"
    stored = quantised_file(path, gltf_axes)
    report = validate(path)
    assert extension_attribute_errors(report)[1] == [], report["issues"]["messages"]
    got = read_glb(path)
    assert torch.equal(got["means"], splats["means"])
    assert torch.equal(got["sh0"], splats["sh0"]) and got["shN"].shape == (40, 0, 3)
    assert torch.allclose(got["scales"].double(), torch.from_numpy(np.log(stored["scale"].astype(np.float64))), atol=1e-6)
    alpha = stored["alpha"].astype(np.float64) / 255
    expected_alpha = np.clip(alpha, 0.5 / 255, 254.5 / 255)  # half a step off 0 and 1
    assert np.allclose(torch.sigmoid(got["opacities"].double()).numpy(), expected_alpha, atol=1e-7)
    assert alpha[1] == 0 and alpha[4] == 1  # the sparse substitution was applied
    turned_back = np.stack([-stored["rot"][:, 1], stored["rot"][:, 0], stored["rot"][:, 3], -stored["rot"][:, 2]], 1) / 32767
    assert same_rotation(got["quats"][:, [1, 2, 3, 0]], turned_back) < 1e-6
    assert quat_error(got["quats"], splats["quats"]).max() <= 1.0 / 32767 + 1e-6


@pytest.mark.parametrize("angle,axis", [(0.7, (1.0, 2.0, -0.5)), (math.pi, (1.0, 0.0, 0.0)), (math.pi, (0.0, 1.0, 0.0)),
                                        (math.pi, (0.0, 0.0, 1.0)), (2.9, (1.0, 1.0, 0.2))])  # fmt: skip
def test_reader_bakes_node_transform(tmp_path, angle, axis):
    """A node with translation, rotation and uniform scale moves the splats; the SH turn with them.
    (Half-turns and near half-turns reach every branch of the matrix -> quaternion conversion.)"""
    splats = make_splats(n=60, sh_degree=3)
    path = tmp_path / "scene.glb"
    write_glb(path, splats)
    gltf, binary, _ = parse_glb(path)
    axis = np.array(axis) / np.linalg.norm(axis)
    xyzw = [*(axis * math.sin(angle / 2)), math.cos(angle / 2)]
    gltf["nodes"] = [{"children": [1], "translation": [1.0, -2.0, 0.5]}, {"mesh": 0, "rotation": xyzw, "scale": [2.0, 2.0, 2.0]}]
    gltf["scenes"] = [{"nodes": [0]}]
    moved = tmp_path / "moved.glb"
    moved.write_bytes(pack_glb(gltf, binary))
    got = read_glb(moved)

    x, y, z, w = xyzw
    rot = torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]], dtype=torch.float64)  # fmt: skip
    flip = torch.diag(PLY_TO_GLTF.double())
    world = flip @ rot @ flip  # the node's rotation seen in PLY axes
    translation = flip @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    expected_means = 2.0 * splats["means"].double() @ world.T + translation
    assert torch.allclose(got["means"].double(), expected_means, atol=1e-5)
    assert torch.allclose(got["scales"].double(), splats["scales"].double() + math.log(2.0), atol=1e-5)

    def covariance(s):
        q = s["quats"].double() / s["quats"].double().norm(dim=1, keepdim=True)
        w_, x_, y_, z_ = q.unbind(1)
        r = torch.stack([1 - 2 * (y_ * y_ + z_ * z_), 2 * (x_ * y_ - w_ * z_), 2 * (x_ * z_ + w_ * y_),
                         2 * (x_ * y_ + w_ * z_), 1 - 2 * (x_ * x_ + z_ * z_), 2 * (y_ * z_ - w_ * x_),
                         2 * (x_ * z_ - w_ * y_), 2 * (y_ * z_ + w_ * x_), 1 - 2 * (x_ * x_ + y_ * y_)], 1).reshape(-1, 3, 3)  # fmt: skip
        m = r * s["scales"].double().exp()[:, None, :]
        return m @ m.transpose(1, 2)

    expected_cov = 4.0 * world @ covariance(splats) @ world.T
    assert torch.allclose(covariance(got), expected_cov, rtol=1e-4, atol=1e-9)
    dirs = torch.nn.functional.normalize(torch.randn(60, 3, dtype=torch.float64), dim=1)
    sh = lambda s: torch.cat([s["sh0"], s["shN"]], 1).double()  # noqa: E731
    before = (eval_sh_bases(3, dirs)[:, :, None] * sh(splats)).sum(1)
    after = (eval_sh_bases(3, dirs @ world.T)[:, :, None] * sh(got)).sum(1)  # same colour seen from the turned direction
    assert torch.allclose(before, after, atol=1e-4)


# --- bad input ----------------------------------------------------------------------------------


def assert_one_line_error(path: Path, match: str) -> None:
    with pytest.raises(InputError) as info:
        read_glb(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert match in message, message


def test_bad_files(tmp_path):
    good = tmp_path / "good.glb"
    write_glb(good, make_splats(n=30, sh_degree=1))
    data = good.read_bytes()
    gltf, binary, _ = parse_glb(good)

    cases = {
        "truncated.glb": (data[: len(data) // 2], "truncated"),
        "header.glb": (data[:8], "shorter than its 12-byte header"),
        "magic.glb": (b"glTX" + data[4:], "no 'glTF' magic"),
        "version.glb": (data[:4] + struct.pack("<I", 1) + data[8:], "GLB version 1"),
        "json.glb": (pack_glb(b"{not json}", b""), "not valid JSON"),
        "empty.glb": (b"", "shorter than its 12-byte header"),
    }
    mesh_only = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 36}], "bufferViews": [{"buffer": 0, "byteLength": 36}],
                 "accessors": [{"bufferView": 0, "componentType": FLOAT, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]}],
                 "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}], "nodes": [{"mesh": 0}], "scenes": [{"nodes": [0]}]}  # fmt: skip
    triangle = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype="<f4").tobytes()
    cases["no_extension.glb"] = (pack_glb(mesh_only, triangle), f"no mesh primitive with the {EXTENSION} extension")

    def variant(edit) -> bytes:
        g = json.loads(json.dumps(gltf))
        edit(g)
        return pack_glb(g, binary)

    attrs = lambda g: g["meshes"][0]["primitives"][0]["attributes"]  # noqa: E731
    cases["no_scale.glb"] = (variant(lambda g: attrs(g).pop(ATTRIBUTE_PREFIX + "SCALE")), f"attribute {ATTRIBUTE_PREFIX}SCALE")
    cases["partial_sh.glb"] = (variant(lambda g: attrs(g).pop(ATTRIBUTE_PREFIX + "SH_DEGREE_1_COEF_2")), "SH degree 1 is partially defined")
    cases["out_of_bounds.glb"] = (variant(lambda g: g["accessors"][2].update(count=31)), "lies outside bufferViews")
    cases["view_outside.glb"] = (variant(lambda g: g["bufferViews"][2].update(byteOffset=10**6)), "lies outside its buffer")
    cases["bad_index.glb"] = (variant(lambda g: attrs(g).update(POSITION=99)), "accessors[99], which does not exist")
    cases["required.glb"] = (variant(lambda g: g.update(extensionsRequired=["EXT_meshopt_compression"])), "requires EXT_meshopt_compression")
    cases["malformed.glb"] = (variant(lambda g: g["accessors"][0].pop("count")), "malformed glTF JSON")
    cases["wrong_type.glb"] = (variant(lambda g: g["accessors"][2].update(type="VEC3")), "needs VEC4")
    cases["no_bin.glb"] = (pack_glb(gltf, None), "no GLB BIN chunk")
    for name, (content, match) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert_one_line_error(tmp_path / name, match)
    assert_one_line_error(tmp_path / "missing.glb", "file not found")


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    splats = make_splats(n=10, sh_degree=1)
    path = tmp_path / "out.glb"
    bad = dict(splats, means=torch.full((10, 3), float("nan")))
    with pytest.raises(InputError, match="no valid splats"):
        write_glb(path, bad)
    degree4 = dict(splats, shN=torch.zeros(10, 24, 3))
    with pytest.raises(InputError, match="up to degree 3"):
        write_glb(path, degree4)
    assert list(tmp_path.iterdir()) == []

    def broken_replace(src, dst):
        raise OSError("disk full")

    write_glb(path, splats)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_glb(path, make_splats(n=10, sh_degree=0))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.glb"]  # no temp file left


# --- splat-transform 3.7.0 ----------------------------------------------------------------------



@pytest.mark.parametrize("sh_degree", [0, 3])
def test_matches_splat_transform(tmp_path, splat_transform, validate, sh_degree):
    """splat-transform's .glb of our PLY reads back as the source splats, in the same axes as our own .glb,
    and the two files hold the same attributes with the same values (positions of each splat equal)."""
    n = 400
    splats = make_splats(n=n, sh_degree=sh_degree)
    write_ply(tmp_path / "src.ply", splats)
    log = splat_transform(tmp_path / "src.ply", tmp_path / "st.glb")
    assert f"{n} gaussians" in log, log
    write_glb(tmp_path / "ours.glb", splats)

    theirs_read = read_glb(tmp_path / "st.glb")  # splat-transform keeps the PLY's order
    assert_round_trip(splats, theirs_read, "our reader <- splat-transform .glb")
    assert_round_trip(splats, read_glb(tmp_path / "ours.glb"), "our reader <- our .glb")

    ours, ours_bin, _ = parse_glb(tmp_path / "ours.glb")
    theirs, theirs_bin, _ = parse_glb(tmp_path / "st.glb")
    ours_prim, theirs_prim = ours["meshes"][0]["primitives"][0], theirs["meshes"][0]["primitives"][0]
    assert set(ours_prim["attributes"]) == set(theirs_prim["attributes"])
    assert ours_prim["mode"] == theirs_prim["mode"] == 0
    assert ours_prim["extensions"] == theirs_prim["extensions"]
    assert ours["extensionsUsed"] == theirs["extensionsUsed"] and ours["nodes"] == theirs["nodes"]
    for name in ours_prim["attributes"]:
        a = ours["accessors"][ours_prim["attributes"][name]]
        b = theirs["accessors"][theirs_prim["attributes"][name]]
        assert (a["type"], a["componentType"], a["count"], a.get("normalized")) == (b["type"], b["componentType"], b["count"], b.get("normalized")), name
        mine, other = attribute(ours, ours_bin, name), attribute(theirs, theirs_bin, name)
        if name == "POSITION":
            assert np.array_equal(mine, other)  # same axes: every splat at the same place
            assert a["min"] == b["min"] and a["max"] == b["max"]
        elif name.endswith("ROTATION"):  # they store the PLY's quaternion unnormalised (the spec: unit)
            assert same_rotation(mine, other) < 1e-6
            assert np.abs(np.linalg.norm(other, axis=1) - 1).max() > 0.1
        elif name == "COLOR_0":  # they store sRGB, we linear (the spec's note); alpha alike
            srgb = other[:, :3].astype(np.float64) / 255
            linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
            assert np.abs(mine[:, :3] / 255 - linear).max() <= 2.5 / 255
            assert np.abs(mine[:, 3].astype(int) - other[:, 3]).max() <= 1
        else:  # scale, opacity and all SH coefficients (theirs rotated by their own SH rotation code)
            assert np.allclose(mine, other, rtol=1e-6, atol=1e-7), name

    known, others = extension_attribute_errors(validate(tmp_path / "st.glb"))
    assert others == [] and len(known) == len(ours_prim["attributes"]) - 2  # splat-transform's file: same report
