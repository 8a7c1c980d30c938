"""glTF 2.0 binary (`.glb`) with the Khronos `KHR_gaussian_splatting` extension, written and read.

Spec: KhronosGroup/glTF `extensions/2.0/Khronos/KHR_gaussian_splatting/README.md` and
`schema/mesh.primitive.KHR_gaussian_splatting.schema.json` (snapshot 77b44be, 2026-07; the README's status
line still says "Release Candidate"), https://github.com/KhronosGroup/glTF/tree/main/extensions/2.0/Khronos/KHR_gaussian_splatting

Layout written (one scene, one node without a transform, one mesh, one primitive):
    primitive  mode 0 (POINTS), extensions.KHR_gaussian_splatting = {kernel "ellipse" (required),
               colorSpace "srgb_rec709_display" (required; our training images are sRGB, display-referred),
               projection "perspective", sortingMethod "cameraDistance" (optional, both the defaults)}
    attributes, one tightly packed buffer view each (4-byte aligned, target ARRAY_BUFFER), in this order:
        POSITION                                   VEC3   float   metres; min/max given (glTF requires them)
        COLOR_0                                    VEC4   ubyte normalized: the spec's optional point-cloud
                                                          fallback, linear RGB = sRGB⁻¹(clamp(SH_C0·f_dc + 0.5)),
                                                          A = opacity
        KHR_gaussian_splatting:ROTATION            VEC4   float   unit quaternion, glTF order x, y, z, w
        KHR_gaussian_splatting:SCALE               VEC3   float   linear (exp of our log scales)
        KHR_gaussian_splatting:OPACITY             SCALAR float   sigmoid(logit), in [0, 1]
        KHR_gaussian_splatting:SH_DEGREE_0_COEF_0  VEC3   float   the raw DC coefficient f_dc (colour =
                                                          SH_C0·f_dc + 0.5, the spec's and INRIA's convention)
        KHR_gaussian_splatting:SH_DEGREE_l_COEF_n  VEC3   float   l = 1..3, n = 0..2l (m = -l..l): RGB of
                                                          shN[:, l² - 1 + n] (the spec's real SH with the
                                                          Condon–Shortley phase is gsplat's/INRIA's basis,
                                                          same order and signs, so no sign changes)
    `extensionsUsed: ["KHR_gaussian_splatting"]`, no `extensionsRequired` (the spec wants viewers without the
    extension to fall back to drawing points). GLB: 12-byte header, JSON chunk padded with spaces, BIN chunk
    padded with zeros. Lossless float32 (COLOR_0 aside): 60 B/splat at SH degree 0, 96 at 1, 156 at 2, 240 at
    3, plus 1.5-4 KB of JSON.

Axes. glTF is right-handed, +Y up, metres; our splats are in the PLY/COLMAP axes (x right, y down,
z forward). The spec leaves pre-trained data to be "rotated on load" into glTF axes without fixing the
rotation. splat-transform 3.7.0 (the installed `dist/index.mjs` `writeGlb`, the same code as
`src/lib/writers/write-glb.ts` in the repository snapshot 8d6b801) calls `convertToSpace(dataTable, Transform.IDENTITY)`
on data read from a PLY, which is labelled `Transform.PLY = fromEulers(0, 0, 180)`: it rotates the scene
180° about z, x -> -x, y -> -y (y now up), z kept. We do the same, so that a glTF viewer shows our .glb
and splat-transform's .glb of the same PLY identically: positions (-x, -y, z), quaternion r ⊗ q with
r = (w 0, x 0, y 0, z 1), i.e. (w, x, y, z) -> (-z, -y, x, w), and the SH coefficients rotated with the
scene (for this rotation: the ones odd in x·y negated, `sh_rotation`). The reader undoes it. Checked in
the tests: splat-transform's .glb of our PLY holds bit for bit our POSITION, SCALE, OPACITY and SH values
(so its SH rotation agrees with ours) and the same rotations up to normalisation and sign.
(The other common choice, 180° about x as SPZ's RUB, differs from this by a half-turn about the up axis.)

Reader: any glTF the spec allows in a GLB: every primitive with the extension that the default scene
instantiates (or, without one, every such primitive), concatenated; the node's global transform
(translation, rotation, uniform positive scale) baked in, then the axis change above; accessors with
byteStride, byteOffset, sparse substitution, normalized integer component types (the spec allows
byte/short normalized rotations, (u)byte/(u)short scales and opacities), buffers in the BIN chunk, data
URIs or files next to the .glb. Opacity is clamped half a quantization step off 0 and 1 before the logit
(2^-25 for floats), scale to a positive minimum before the log. Primitives of a lower SH degree than the
others get zero coefficients. SH are rotated with a node's rotation (`sh_rotation`, any rotation).
Compression extensions (listed in extensionsRequired) are not supported: InputError.

Where splat-transform 3.7.0 (= the snapshot) differs from the spec, we follow the spec: it writes the
rotation as stored in the PLY (not normalised; the spec says unit quaternions) and COLOR_0 as the sRGB
value (the spec's note says COLOR_0 is linear, so sRGB colour has to be decoded first).

Validation: gltf-validator 2.0.0-dev.3.10 (the newest on npm) reports every `KHR_gaussian_splatting:*`
attribute as MESH_PRIMITIVE_INVALID_ATTRIBUTE, because it only knows core and `_`-prefixed semantics
(KhronosGroup/glTF-Validator#252, pending the core change KhronosGroup/glTF#2514); it does so for
splat-transform's files too. Apart from those and the UNSUPPORTED_EXTENSION info it finds nothing.

Our own code: written from the spec; splat-transform was read for its axis choice and compared against
in the tests (tests/test_export_gltf.py), none of its code is used.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import torch

from gspruner import __version__
from gspruner.errors import InputError
from gspruner.export.formats import SH_C0, atomic_write, prepare_splats, read_file_bytes, sigmoid, to_splat_dict
from gspruner.render.sh import eval_sh_bases

__all__ = ["write_glb", "read_glb", "sh_rotation", "sh_attribute_names", "GLTF_FROM_PLY", "EXTENSION", "ATTRIBUTE_PREFIX"]

EXTENSION = "KHR_gaussian_splatting"
ATTRIBUTE_PREFIX = EXTENSION + ":"
# PLY/COLMAP axes -> glTF axes: 180° about z, as splat-transform (its own inverse)
GLTF_FROM_PLY = np.diag([-1.0, -1.0, 1.0, 1.0])

_GLB_MAGIC = b"glTF"
_GLB_HEADER = struct.Struct("<4sII")  # magic, version, total length
_CHUNK_HEADER = struct.Struct("<II")  # length, type
_CHUNK_JSON, _CHUNK_BIN = 0x4E4F534A, 0x004E4942
_FLOAT, _UNSIGNED_BYTE = 5126, 5121
_ARRAY_BUFFER = 34962
_COMPONENT_DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_NORMALIZED_MAX = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_SH_DEGREES = 3  # the spec defines SH_DEGREE_0..3
_READABLE_EXTENSIONS = {EXTENSION, "KHR_mesh_quantization"}
_F32_TINY, _F32_MAX = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
_FLOAT_OPACITY_MARGIN = 2.0**-25  # half a float32 step below 1
_EXTENSION_OBJECT = {
    "kernel": "ellipse",
    "colorSpace": "srgb_rec709_display",
    "projection": "perspective",
    "sortingMethod": "cameraDistance",
}


def sh_attribute_names(sh_degree: int) -> list[str]:
    """The SH attribute semantics up to `sh_degree`, in shN order (degree 0 first, then m = -l..l)."""
    return [f"{ATTRIBUTE_PREFIX}SH_DEGREE_{l}_COEF_{n}" for l in range(sh_degree + 1) for n in range(2 * l + 1)]


# ----------------------------------------------------------------------------------------------------
# Rigid transforms of a splat dict (pre-activation numpy arrays)
# ----------------------------------------------------------------------------------------------------


def _quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of wxyz quaternions (broadcasting over leading axes)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [aw * bw - ax * bx - ay * by - az * bz,
         aw * bx + ax * bw + ay * bz - az * by,
         aw * by - ax * bz + ay * bw + az * bx,
         aw * bz + ax * by - ay * bx + az * bw],
        axis=-1,
    )  # fmt: skip


def _matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit wxyz quaternion of a 3×3 rotation matrix (Shepperd's method: the largest component first)."""
    trace = np.trace(r)
    diagonal = np.diag(r)
    k = int(np.argmax(np.r_[trace, diagonal]))
    if k == 0:
        w = 0.5 * np.sqrt(1.0 + trace)
        q = [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
    else:
        i = k - 1
        j, l = (i + 1) % 3, (i + 2) % 3
        v = np.zeros(3)
        v[i] = 0.5 * np.sqrt(1.0 + 2 * r[i, i] - trace)
        v[j] = (r[j, i] + r[i, j]) / (4 * v[i])
        v[l] = (r[l, i] + r[i, l]) / (4 * v[i])
        q = [(r[l, j] - r[j, l]) / (4 * v[i]), *v]
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def sh_rotation(rotation: np.ndarray, sh_degree: int) -> np.ndarray:
    """[K-1, K-1] matrix D taking the higher-order SH coefficients c of a splat (gsplat's basis, K =
    (sh_degree+1)²) to those of the splat rotated by `rotation` (3×3): Σ_k c'_k Y_k(R d) = Σ_k c_k Y_k(d).

    Solved by least squares on sample directions (exact up to rounding; entries within 1e-12 of an integer
    are snapped to it, so axis-aligned half-turns give exact ±1).
    """
    num_rest = (sh_degree + 1) ** 2 - 1
    if num_rest == 0:
        return np.zeros((0, 0))
    dirs = np.random.default_rng(0).normal(size=(4 * (num_rest + 1), 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    bases = eval_sh_bases(sh_degree, torch.from_numpy(dirs)).numpy()[:, 1:]  # Y(d)
    rotated = eval_sh_bases(sh_degree, torch.from_numpy(dirs @ rotation)).numpy()[:, 1:]  # Y(Rᵀ d)
    d = np.linalg.lstsq(bases, rotated, rcond=None)[0]  # Y(d) D = Y(Rᵀ d), so c' = D c
    nearest = np.round(d)
    return np.where(np.abs(d - nearest) < 1e-12, nearest, d)


def _transform_splats(a: dict, matrix: np.ndarray) -> dict:
    """Splat arrays (means, log scales, wxyz quats, shN [N,K-1,3]) moved by a 4×4 similarity transform
    (rotation, uniform positive scale, translation)."""
    linear, translation = matrix[:3, :3], matrix[:3, 3]
    scale = float(np.cbrt(np.linalg.det(linear)))
    rotation = linear / scale
    out = dict(a)
    out["means"] = a["means"] @ linear.T + translation
    out["scales"] = a["scales"] + np.log(scale)
    out["quats"] = _quat_multiply(_matrix_to_quat(rotation), a["quats"])
    num_rest = a["shN"].shape[1]
    if num_rest:
        d = sh_rotation(rotation, round((num_rest + 1) ** 0.5) - 1)
        out["shN"] = np.einsum("kj,njc->nkc", d, a["shN"].astype(np.float64))
    return out


# ----------------------------------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------------------------------


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _attribute_arrays(a: dict) -> dict[str, np.ndarray]:
    """Attribute semantic -> [N, components] array (float32, or uint8 for COLOR_0), in glTF axes."""
    n = len(a["means"])
    quats = a["quats"] / np.linalg.norm(a["quats"], axis=1, keepdims=True)
    alpha = sigmoid(a["opacities"])
    colour = _srgb_to_linear(np.clip(SH_C0 * a["sh0"].astype(np.float64) + 0.5, 0.0, 1.0))
    rgba = np.floor(np.concatenate([colour, alpha[:, None]], axis=1) * 255.0 + 0.5).astype(np.uint8)
    sh = np.concatenate([a["sh0"].reshape(n, 1, 3), a["shN"]], axis=1)  # [N,K,3]
    arrays = {
        "POSITION": a["means"].astype(np.float32),
        "COLOR_0": rgba,
        f"{ATTRIBUTE_PREFIX}ROTATION": quats[:, [1, 2, 3, 0]].astype(np.float32),  # wxyz -> xyzw
        f"{ATTRIBUTE_PREFIX}SCALE": np.clip(np.exp(a["scales"]), 0.0, _F32_MAX).astype(np.float32),
        f"{ATTRIBUTE_PREFIX}OPACITY": alpha.astype(np.float32)[:, None],
    }
    for k, name in enumerate(sh_attribute_names(round(sh.shape[1] ** 0.5) - 1)):
        arrays[name] = sh[:, k, :].astype(np.float32)
    return arrays


def _accessor(view: int, array: np.ndarray) -> dict:
    accessor = {
        "bufferView": view,
        "componentType": _UNSIGNED_BYTE if array.dtype == np.uint8 else _FLOAT,
        "count": len(array),
        "type": {1: "SCALAR", 3: "VEC3", 4: "VEC4"}[array.shape[1]],
    }
    if array.dtype == np.uint8:
        accessor["normalized"] = True
    return accessor


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def _glb_chunks(arrays: dict[str, np.ndarray]) -> list[bytes]:
    """The GLB file, as a list of byte strings: header, JSON chunk, BIN chunk (one buffer view per array)."""
    views, accessors, blobs, offset = [], [], [], 0
    for i, array in enumerate(arrays.values()):
        blob = np.ascontiguousarray(array).tobytes()  # little-endian f4 / u1
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(blob), "target": _ARRAY_BUFFER})
        accessors.append(_accessor(i, array))
        blobs.append(_pad4(blob, b"\0"))
        offset += len(blobs[-1])
    positions = arrays["POSITION"]
    accessors[0]["min"] = [float(v) for v in positions.min(axis=0)]
    accessors[0]["max"] = [float(v) for v in positions.max(axis=0)]
    gltf = {
        "asset": {"version": "2.0", "generator": f"gspruner {__version__}"},
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{
            "attributes": {name: i for i, name in enumerate(arrays)},
            "mode": 0,
            "extensions": {EXTENSION: dict(_EXTENSION_OBJECT)},
        }]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": offset}],
    }  # fmt: skip
    json_chunk = _pad4(json.dumps(gltf, separators=(",", ":")).encode("utf-8"), b" ")
    total = _GLB_HEADER.size + 2 * _CHUNK_HEADER.size + len(json_chunk) + offset
    return [
        _GLB_HEADER.pack(_GLB_MAGIC, 2, total),
        _CHUNK_HEADER.pack(len(json_chunk), _CHUNK_JSON),
        json_chunk,
        _CHUNK_HEADER.pack(offset, _CHUNK_BIN),
        *blobs,
    ]


def write_glb(path: str | os.PathLike, splats: dict) -> int:
    """Write splats as a binary glTF with KHR_gaussian_splatting (float32, lossless), atomically, in glTF
    axes (our PLY axes turned 180° about z, as splat-transform does). SH degree 0-3.

    Splats with NaN/Inf values or a zero quaternion are dropped with one warning. Returns the number of
    splats written; InputError (no file written) when none is left or the SH degree is above 3.
    """
    path = Path(path)
    a = prepare_splats(path, splats)
    sh_degree = round((a["shN"].shape[1] + 1) ** 0.5) - 1
    if sh_degree > _SH_DEGREES:
        raise InputError(f"{path}: {EXTENSION} holds SH up to degree {_SH_DEGREES}, the splats have degree {sh_degree}")
    a = _transform_splats(a, GLTF_FROM_PLY)
    atomic_write(path, _glb_chunks(_attribute_arrays(a)))
    return len(a["means"])


# ----------------------------------------------------------------------------------------------------
# Reader
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Gltf:
    """A parsed glTF: its JSON and its buffers' bytes; `fail` raises the one-line InputError."""

    path: Path
    json: dict
    buffers: list[bytes]

    def fail(self, problem: str):
        raise InputError(f"{self.path}: {problem}")

    def item(self, kind: str, index) -> dict:
        """json[kind][index], or InputError when the index is not a valid one."""
        items = self.json.get(kind, [])
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(items):
            self.fail(f"glTF refers to {kind}[{index}], which does not exist")
        if not isinstance(items[index], dict):
            self.fail(f"glTF {kind}[{index}] is not an object")
        return items[index]

    def view_bytes(self, index: int) -> tuple[memoryview, int | None]:
        """A buffer view's bytes and its byteStride (None when tightly packed)."""
        view = self.item("bufferViews", index)
        self.item("buffers", view["buffer"])
        buffer = self.buffers[view["buffer"]]
        start, length = view.get("byteOffset", 0), view["byteLength"]
        if start < 0 or length < 0 or start + length > len(buffer):
            self.fail(f"bufferViews[{index}] (bytes {start}..{start + length}) lies outside its buffer ({len(buffer)} bytes)")
        return memoryview(buffer)[start : start + length], view.get("byteStride")

    def typed_array(self, view_index: int, offset: int, dtype: np.dtype, count: int, width: int, what: str) -> np.ndarray:
        """[count, width] elements of `dtype` from a buffer view (honouring its byteStride)."""
        data, stride = self.view_bytes(view_index)
        element = dtype.itemsize * width
        stride = stride or element
        end = offset + stride * (count - 1) + element if count else offset
        if offset < 0 or stride < element or end > len(data):
            self.fail(f"{what} (bytes {offset}..{end}, stride {stride}) lies outside bufferViews[{view_index}] ({len(data)} bytes)")
        if count == 0:
            return np.zeros((0, width), dtype=dtype)
        return np.ndarray((count, width), dtype=dtype, buffer=data, offset=offset, strides=(stride, dtype.itemsize)).copy()

    def accessor(self, index: int, name: str, types: tuple[str, ...]) -> np.ndarray:
        """Accessor values as float64 [count, components] (normalized integers mapped to [0, 1] / [-1, 1])."""
        acc = self.item("accessors", index)
        what = f"accessor {index} ({name})"
        if acc.get("type") not in types:
            self.fail(f"{what} has type {acc.get('type')}, {EXTENSION} needs {' or '.join(types)}")
        component = acc.get("componentType")
        if component not in _COMPONENT_DTYPES:
            self.fail(f"{what} has unknown componentType {component}")
        dtype, width, count = np.dtype(_COMPONENT_DTYPES[component]), _TYPE_SIZES[acc["type"]], acc["count"]
        if "bufferView" in acc:
            values = self.typed_array(acc["bufferView"], acc.get("byteOffset", 0), dtype, count, width, what)
        else:
            values = np.zeros((count, width), dtype=dtype)
        if "sparse" in acc:
            values = self._apply_sparse(acc["sparse"], values, dtype, what)
        values = values.astype(np.float64)
        if acc.get("normalized") and component in _NORMALIZED_MAX:
            values = np.maximum(values / _NORMALIZED_MAX[component], -1.0)
        return values

    def _apply_sparse(self, sparse: dict, values: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
        count, indices, substitutes = sparse["count"], sparse["indices"], sparse["values"]
        index_type = np.dtype(_COMPONENT_DTYPES.get(indices["componentType"], "<u4"))
        rows = self.typed_array(indices["bufferView"], indices.get("byteOffset", 0), index_type, count, 1, what)[:, 0]
        if len(rows) and rows.max() >= len(values):
            self.fail(f"{what} has sparse indices beyond its count {len(values)}")
        values = values.copy()
        values[rows.astype(np.int64)] = self.typed_array(
            substitutes["bufferView"], substitutes.get("byteOffset", 0), dtype, count, values.shape[1], what
        )
        return values


def _parse_glb(path: Path, data: bytes) -> tuple[dict, bytes | None]:
    """The JSON and BIN chunks of a GLB file."""
    if len(data) < _GLB_HEADER.size:
        raise InputError(f"{path}: not a GLB file (shorter than its 12-byte header)")
    magic, version, length = _GLB_HEADER.unpack_from(data)
    if magic != _GLB_MAGIC:
        raise InputError(f"{path}: not a GLB file (no 'glTF' magic)")
    if version != 2:
        raise InputError(f"{path}: GLB version {version} is not supported (2)")
    if length > len(data):
        raise InputError(f"{path}: truncated GLB file ({len(data)} bytes, its header says {length})")
    chunks, offset = [], _GLB_HEADER.size
    while offset + _CHUNK_HEADER.size <= length:
        size, kind = _CHUNK_HEADER.unpack_from(data, offset)
        start = offset + _CHUNK_HEADER.size
        if start + size > length:
            raise InputError(f"{path}: truncated GLB file (a chunk of {size} bytes at {offset} runs past the end)")
        chunks.append((kind, data[start : start + size]))
        offset = start + size
    if not chunks or chunks[0][0] != _CHUNK_JSON:
        raise InputError(f"{path}: GLB file has no JSON chunk")
    try:
        gltf = json.loads(chunks[0][1].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: GLB JSON chunk is not valid JSON ({' '.join(str(e).split())})") from None
    if not isinstance(gltf, dict):
        raise InputError(f"{path}: GLB JSON chunk is not a glTF object")
    binary = chunks[1][1] if len(chunks) > 1 and chunks[1][0] == _CHUNK_BIN else None
    return gltf, binary


def _load_buffers(path: Path, gltf: dict, binary: bytes | None) -> list[bytes]:
    """Each glTF buffer's bytes: the BIN chunk (buffer 0 without uri), a data URI or a file beside `path`."""
    buffers = []
    for i, buffer in enumerate(gltf.get("buffers", [])):
        uri = buffer.get("uri")
        if uri is None:
            if i != 0 or binary is None:
                raise InputError(f"{path}: buffers[{i}] has no uri and there is no GLB BIN chunk for it")
            data = binary
        elif uri.startswith("data:"):
            try:
                data = base64.b64decode(uri.split(",", 1)[1], validate=True)
            except (IndexError, ValueError):
                raise InputError(f"{path}: buffers[{i}] has a data URI that is not base64") from None
        else:
            data = read_file_bytes(path.parent / unquote(uri))
        if len(data) < buffer["byteLength"]:
            raise InputError(f"{path}: truncated glTF buffer {i} ({len(data)} bytes, byteLength {buffer['byteLength']})")
        buffers.append(data)
    return buffers


def _node_matrix(node: dict) -> np.ndarray:
    """A node's local 4×4 transform (column-major `matrix`, or translation · rotation(xyzw) · scale)."""
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T
    x, y, z, w = node.get("rotation", [0.0, 0.0, 0.0, 1.0])
    rotation = np.array(
        [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
         [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
         [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
    )  # fmt: skip
    m = np.eye(4)
    m[:3, :3] = rotation * np.asarray(node.get("scale", [1.0, 1.0, 1.0]), dtype=np.float64)
    m[:3, 3] = node.get("translation", [0.0, 0.0, 0.0])
    return m


def _mesh_instances(g: _Gltf) -> list[tuple[int, np.ndarray]]:
    """(mesh index, global transform) of every mesh the default scene instantiates (all root nodes when the
    file has no scenes)."""
    nodes = g.json.get("nodes", [])
    if g.json.get("scenes"):
        roots = g.item("scenes", g.json.get("scene", 0)).get("nodes", [])
    else:
        children = {c for node in nodes for c in node.get("children", [])}
        roots = [i for i in range(len(nodes)) if i not in children]
    instances, stack, seen = [], [(i, np.eye(4)) for i in roots], set()
    while stack:
        index, parent = stack.pop()
        if index in seen:
            g.fail(f"glTF node {index} appears twice in the scene graph")
        seen.add(index)
        node = g.item("nodes", index)
        world = parent @ _node_matrix(node)
        if "mesh" in node:
            instances.append((node["mesh"], world))
        stack.extend((child, world) for child in node.get("children", []))
    return instances


def _splat_primitives(g: _Gltf) -> list[tuple[str, dict, np.ndarray]]:
    """(label, primitive, global transform) of each KHR_gaussian_splatting primitive to read."""
    found = []
    for mesh_index, world in _mesh_instances(g):
        for p, primitive in enumerate(g.item("meshes", mesh_index).get("primitives", [])):
            if EXTENSION in primitive.get("extensions", {}):
                found.append((f"meshes[{mesh_index}].primitives[{p}]", primitive, world))
    if not found:  # splat meshes that no scene node instantiates: read them untransformed
        for mesh_index, mesh in enumerate(g.json.get("meshes", [])):
            for p, primitive in enumerate(mesh.get("primitives", [])):
                if EXTENSION in primitive.get("extensions", {}):
                    found.append((f"meshes[{mesh_index}].primitives[{p}]", primitive, np.eye(4)))
    if not found:
        g.fail(f"glTF file has no mesh primitive with the {EXTENSION} extension (not a Gaussian splat file)")
    return found


def _check_transform(g: _Gltf, label: str, world: np.ndarray) -> None:
    """The spec's decomposable transforms; we also need the scale to be uniform."""
    linear = world[:3, :3]
    lengths = np.linalg.norm(linear, axis=0)
    if not np.isfinite(world).all() or not (lengths > 0).all() or np.linalg.det(linear) <= 0:
        g.fail(f"{label}: its node transform is not a rotation with a positive scale")
    if lengths.max() - lengths.min() > 1e-6 * lengths.max():
        g.fail(f"{label}: its node has a non-uniform scale {lengths.round(6).tolist()}, which is not supported")


def _read_sh(g: _Gltf, label: str, attributes: dict, n: int) -> np.ndarray:
    """SH coefficients [n, K, 3] (DC first) of the highest fully defined degree."""
    sh = []
    for degree in range(_SH_DEGREES + 1):
        names = sh_attribute_names(degree)[degree * degree :]
        present = [name in attributes for name in names]
        if not any(present):
            break
        if not all(present):
            g.fail(f"{label}: SH degree {degree} is partially defined (missing {names[present.index(False)]})")
        sh += [g.accessor(attributes[name], name, ("VEC3",)) for name in names]
    return np.stack(sh, axis=1)


def _opacity_margin(g: _Gltf, accessor_index: int) -> float:
    """Half a quantization step of the opacity accessor's component type (2^-25 for float)."""
    component = g.item("accessors", accessor_index).get("componentType")
    return 0.5 / _NORMALIZED_MAX[component] if component in _NORMALIZED_MAX else _FLOAT_OPACITY_MARGIN


def _read_primitive(g: _Gltf, label: str, primitive: dict, world: np.ndarray) -> dict[str, np.ndarray]:
    """One splat primitive as pre-activation arrays in our (PLY) axes."""
    attributes = primitive.get("attributes", {})
    required = ["POSITION"] + [ATTRIBUTE_PREFIX + s for s in ("ROTATION", "SCALE", "OPACITY", "SH_DEGREE_0_COEF_0")]
    missing = [name for name in required if name not in attributes]
    if missing:
        nested = list(primitive["extensions"][EXTENSION].get("extensions", {}))
        hint = f" (it uses {', '.join(nested)}, which is not supported)" if nested else ""
        g.fail(f"{label} lacks the {EXTENSION} attribute {missing[0]}{hint}")
    _check_transform(g, label, world)
    means = g.accessor(attributes["POSITION"], "POSITION", ("VEC3",))
    rotation = g.accessor(attributes[required[1]], required[1], ("VEC4",))
    scale = g.accessor(attributes[required[2]], required[2], ("VEC3",))
    opacity = g.accessor(attributes[required[3]], required[3], ("SCALAR",))[:, 0]
    sh = _read_sh(g, label, attributes, len(means))
    n = len(means)
    if any(len(x) != n for x in (rotation, scale, opacity, sh)):
        g.fail(f"{label}: its attributes have different counts")
    if (scale < 0).any():
        g.fail(f"{label}: {int((scale < 0).any(axis=1).sum())} splats have a negative scale (invalid per {EXTENSION})")
    margin = _opacity_margin(g, attributes[required[3]])
    alpha = np.clip(opacity, margin, 1.0 - margin)
    a = {
        "means": means,
        "scales": np.log(np.maximum(scale, _F32_TINY)),
        "quats": rotation[:, [3, 0, 1, 2]],  # xyzw -> wxyz
        "opacities": np.log(alpha / (1.0 - alpha)),
        "sh0": sh[:, 0, :],
        "shN": sh[:, 1:, :],
    }
    return _transform_splats(a, GLTF_FROM_PLY @ world)


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Primitives joined into one splat set; a lower SH degree is padded with zero coefficients."""
    num_rest = max(p["shN"].shape[1] for p in parts)
    for p in parts:
        missing = num_rest - p["shN"].shape[1]
        p["shN"] = np.concatenate([p["shN"], np.zeros((len(p["shN"]), missing, 3))], axis=1)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def read_glb(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a binary glTF with KHR_gaussian_splatting primitives into a splat dict (float32 CPU tensors) in
    gspruner's (PLY) axes. Raises InputError naming the file for anything it cannot read."""
    path = Path(path)
    gltf, binary = _parse_glb(path, read_file_bytes(path))
    try:
        unsupported = [e for e in gltf.get("extensionsRequired", []) if e not in _READABLE_EXTENSIONS]
        if unsupported:
            raise InputError(f"{path}: glTF file requires {', '.join(unsupported)}, which gspruner cannot read")
        g = _Gltf(path, gltf, _load_buffers(path, gltf, binary))
        primitives = _splat_primitives(g)
        for label, primitive, _ in primitives:
            color_space = primitive["extensions"][EXTENSION].get("colorSpace")
            if color_space != _EXTENSION_OBJECT["colorSpace"]:
                warnings.warn(f"{path}: {label} has colorSpace {color_space!r}; its colours are kept as stored", stacklevel=2)
        a = _concatenate([_read_primitive(g, label, p, world) for label, p, world in primitives])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        raise InputError(f"{path}: malformed glTF JSON ({reason})") from None
    if len(a["means"]) == 0:
        raise InputError(f"{path}: glTF file has no splats")
    return to_splat_dict(a["means"], a["scales"], a["quats"], a["opacities"], a["sh0"], a["shN"])
