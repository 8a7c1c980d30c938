"""COLMAP sparse models: read and write cameras / images / points3D, binary (.bin) and text (.txt).

Poses are kept as COLMAP stores them: `qvec` (w, x, y, z) and `tvec` map world to camera (OpenCV axes).
2D observations and point tracks are skipped on reading and written empty.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gspruner.errors import InputError

# COLMAP model id -> (name, number of parameters); the full list, so that any model can be read and named
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: (model_id, n) for model_id, (name, n) in CAMERA_MODELS.items()}

# smallest record sizes in bytes, to check a count read from a file against the bytes left
_CAMERA_BYTES = 4 + 4 + 8 + 8
_IMAGE_BYTES = 4 + 32 + 24 + 4 + 1 + 8
_POINT_BYTES = 8 + 24 + 3 + 8 + 8


@dataclass
class ColmapCamera:
    id: int
    model: str  # e.g. "PINHOLE", "OPENCV"
    width: int
    height: int
    params: np.ndarray  # [n] float64, in COLMAP's order for the model


@dataclass
class ColmapImage:
    id: int
    name: str  # path relative to the images folder
    camera_id: int
    qvec: np.ndarray  # [4] float64 (w, x, y, z): world-to-camera rotation
    tvec: np.ndarray  # [3] float64: world-to-camera translation

    def world_to_camera(self) -> np.ndarray:  # [4,4] float64
        w2c = np.eye(4)
        w2c[:3, :3] = qvec_to_rotmat(self.qvec)
        w2c[:3, 3] = self.tvec
        return w2c


@dataclass
class ColmapPoints:
    xyz: np.ndarray  # [P,3] float64
    rgb: np.ndarray  # [P,3] uint8
    error: np.ndarray  # [P] float64 reprojection error


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: list[ColmapImage]  # in file order
    points: ColmapPoints


def qvec_to_rotmat(qvec: np.ndarray) -> np.ndarray:  # [4] (w,x,y,z) -> [3,3]
    w, x, y, z = np.asarray(qvec, dtype=np.float64) / np.linalg.norm(qvec)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:  # [3,3] -> [4] (w,x,y,z), w >= 0
    # the quaternion is the eigenvector of the largest eigenvalue of this symmetric matrix (lower triangle)
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = np.asarray(R, dtype=np.float64)
    K = np.array([
        [r00 - r11 - r22, 0, 0, 0],
        [r01 + r10, r11 - r00 - r22, 0, 0],
        [r02 + r20, r12 + r21, r22 - r00 - r11, 0],
        [r21 - r12, r02 - r20, r10 - r01, r00 + r11 + r22],
    ]) / 3.0
    eigenvalues, eigenvectors = np.linalg.eigh(K)
    x, y, z, w = eigenvectors[:, np.argmax(eigenvalues)]
    qvec = np.array([w, x, y, z])
    return -qvec if w < 0 else qvec


# ----------------------------------------------------------------------------------------- finding models

MODEL_FILES = ("cameras", "images", "points3D")


def find_model_dir(data_dir: Path) -> Path | None:
    """`data_dir/sparse/0/` if it holds a model, else `data_dir/sparse/` if it does, else None."""
    for candidate in (data_dir / "sparse" / "0", data_dir / "sparse"):
        if any((candidate / f"{name}{ext}").is_file() for name in MODEL_FILES for ext in (".bin", ".txt")):
            return candidate
    return None


def model_files(model_dir: Path) -> tuple[Path, Path, Path]:
    """(cameras, images, points3D) paths: the binary set if complete, else the text set."""
    model_dir = Path(model_dir)
    for ext in (".bin", ".txt"):
        paths = tuple(model_dir / f"{name}{ext}" for name in MODEL_FILES)
        if all(p.is_file() for p in paths):
            return paths
    missing = [f"{n}.bin" for n in MODEL_FILES if not (model_dir / f"{n}.bin").is_file()]
    raise InputError(f"{model_dir}: incomplete COLMAP model, missing {', '.join(missing)} (and no full .txt set)")


def read_model(model_dir: Path) -> ColmapModel:
    """Reads the binary model in `model_dir` if complete, else the text one."""
    paths = model_files(model_dir)
    readers = _BINARY_READERS if paths[0].suffix == ".bin" else _TEXT_READERS
    return ColmapModel(*(read(p) for read, p in zip(readers, paths)))


# --------------------------------------------------------------------------------------------- binary

class _Cursor:
    """Reads little-endian records from a whole file, checking every count against the bytes left."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def count(self, record_bytes: int, what: str) -> int:
        (n,) = self.unpack("Q")
        left = len(self.data) - self.pos
        if n * record_bytes > left:
            raise InputError(f"{self.path}: truncated or corrupt, announces {n} {what} but only {left} bytes follow")
        return n

    def skip(self, nbytes: int) -> None:
        if self.pos + nbytes > len(self.data):
            raise InputError(f"{self.path}: truncated or corrupt, record runs past the end of the file")
        self.pos += nbytes

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise InputError(f"{self.path}: truncated or corrupt, unterminated image name")
        text = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return text

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise InputError(f"{self.path}: corrupt, {len(self.data) - self.pos} unexpected bytes after the last record")


def _binary(parse):
    """Turns the low-level errors of a binary parser into one-line InputErrors naming the file."""

    def read(path: Path):
        try:
            cursor = _Cursor(Path(path))
            result = parse(cursor)
            cursor.finish()
            return result
        except (struct.error, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{path}: truncated or corrupt COLMAP file ({e})") from None
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror})") from None

    read.__name__ = parse.__name__.lstrip("_")
    return read


@_binary
def _read_cameras_binary(f: _Cursor) -> dict[int, ColmapCamera]:
    cameras = {}
    for _ in range(f.count(_CAMERA_BYTES, "cameras")):
        camera_id, model_id, width, height = f.unpack("iiQQ")
        if model_id not in CAMERA_MODELS:
            raise InputError(f"{f.path}: corrupt, unknown camera model id {model_id}")
        name, n = CAMERA_MODELS[model_id]
        cameras[camera_id] = ColmapCamera(camera_id, name, width, height, np.array(f.unpack(f"{n}d")))
    return cameras


@_binary
def _read_images_binary(f: _Cursor) -> list[ColmapImage]:
    images = []
    for _ in range(f.count(_IMAGE_BYTES, "images")):
        image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = f.unpack("I7dI")
        name = f.string()
        (num_points2d,) = f.unpack("Q")
        f.skip(num_points2d * 24)  # (x, y, point3D_id) per observation
        images.append(ColmapImage(image_id, name, camera_id, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz])))
    return images


@_binary
def _read_points3d_binary(f: _Cursor) -> ColmapPoints:
    n = f.count(_POINT_BYTES, "points")
    xyz, rgb, error = np.zeros((n, 3)), np.zeros((n, 3), np.uint8), np.zeros(n)
    for i in range(n):
        _, x, y, z, r, g, b, err, track_length = f.unpack("Q3d3BdQ")
        f.skip(track_length * 8)  # (image_id, point2D_idx) per track element
        xyz[i], rgb[i], error[i] = (x, y, z), (r, g, b), err
    return ColmapPoints(xyz, rgb, error)


_BINARY_READERS = (_read_cameras_binary, _read_images_binary, _read_points3d_binary)
read_cameras_binary, read_images_binary, read_points3d_binary = _BINARY_READERS


def write_colmap_binary(model_dir: Path, model: ColmapModel) -> None:
    """Writes cameras.bin, images.bin and points3D.bin (no 2D observations, empty tracks)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    out = [struct.pack("<Q", len(model.cameras))]
    for cam in model.cameras.values():
        model_id, n = MODEL_IDS[cam.model]
        assert len(cam.params) == n, f"{cam.model} takes {n} parameters"
        out.append(struct.pack(f"<iiQQ{n}d", cam.id, model_id, cam.width, cam.height, *cam.params))
    (model_dir / "cameras.bin").write_bytes(b"".join(out))

    out = [struct.pack("<Q", len(model.images))]
    for im in model.images:
        out.append(struct.pack("<I7dI", im.id, *im.qvec, *im.tvec, im.camera_id))
        out.append(im.name.encode("utf-8") + b"\0" + struct.pack("<Q", 0))
    (model_dir / "images.bin").write_bytes(b"".join(out))

    pts = model.points
    out = [struct.pack("<Q", len(pts.xyz))]
    for i, (p, c, e) in enumerate(zip(pts.xyz, pts.rgb, pts.error)):
        out.append(struct.pack("<Q3d3BdQ", i + 1, *map(float, p), *map(int, c), float(e), 0))
    (model_dir / "points3D.bin").write_bytes(b"".join(out))


# ----------------------------------------------------------------------------------------------- text

def _text(parse):
    """Feeds a text parser (line number, fields) for each data line; bad lines become InputErrors."""

    def read(path: Path):
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read ({e})") from None
        try:
            return parse(path, lines)
        except (ValueError, IndexError, KeyError) as e:
            raise InputError(f"{path}: malformed COLMAP text file ({e})") from None

    read.__name__ = parse.__name__.lstrip("_")
    return read


def _data_lines(lines: list[str]):  # (line number, fields) of the non-empty, non-comment lines
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            yield i + 1, line.split()


@_text
def _read_cameras_text(path: Path, lines: list[str]) -> dict[int, ColmapCamera]:
    cameras = {}
    for lineno, fields in _data_lines(lines):
        camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
        if model not in MODEL_IDS:
            raise InputError(f"{path}:{lineno}: unknown camera model {model}")
        params = np.array([float(v) for v in fields[4:]])
        if len(params) != MODEL_IDS[model][1]:
            raise InputError(f"{path}:{lineno}: {model} needs {MODEL_IDS[model][1]} parameters, got {len(params)}")
        cameras[camera_id] = ColmapCamera(camera_id, model, width, height, params)
    return cameras


def _is_observation_line(fields: list[str]) -> bool:
    """The POINTS2D[] line of an image: empty, or (X, Y, POINT3D_ID) triples of numbers. An image line never is
    one: its name is not a number (and an image line of 3k numeric fields would need a numeric name)."""
    if len(fields) % 3:
        return False
    try:
        [float(v) for v in fields]
    except ValueError:
        return False
    return True


@_text
def _read_images_text(path: Path, lines: list[str]) -> list[ColmapImage]:
    """Image lines, each followed by its observations line (which may be empty, or left out altogether, as
    some writers do: a line that is not observations is the next image)."""
    images = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 10:
            raise InputError(f"{path}:{i}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        values = [float(v) for v in fields[1:8]]
        name = " ".join(fields[9:])
        images.append(ColmapImage(int(fields[0]), name, int(fields[8]), np.array(values[:4]), np.array(values[4:])))
        if i < len(lines) and not lines[i].lstrip().startswith("#") and _is_observation_line(lines[i].split()):
            i += 1  # this image's observations
    return images


@_text
def _read_points3d_text(path: Path, lines: list[str]) -> ColmapPoints:
    rows = [fields[:8] for _, fields in _data_lines(lines)]
    data = np.array(rows, dtype=np.float64).reshape(-1, 8)  # id x y z r g b error
    return ColmapPoints(data[:, 1:4].copy(), data[:, 4:7].astype(np.uint8), data[:, 7].copy())


_TEXT_READERS = (_read_cameras_text, _read_images_text, _read_points3d_text)
read_cameras_text, read_images_text, read_points3d_text = _TEXT_READERS


def write_colmap_text(model_dir: Path, model: ColmapModel) -> None:
    """Writes cameras.txt, images.txt and points3D.txt (no 2D observations, empty tracks)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    for cam in model.cameras.values():
        lines.append(" ".join([str(cam.id), cam.model, str(cam.width), str(cam.height), *map(repr, map(float, cam.params))]))
    (model_dir / "cameras.txt").write_text("\n".join(lines) + "\n")

    lines = ["# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "# POINTS2D[] as (X, Y, POINT3D_ID)"]
    for im in model.images:
        lines.append(" ".join([str(im.id), *map(repr, map(float, [*im.qvec, *im.tvec])), str(im.camera_id), im.name]))
        lines.append("")
    (model_dir / "images.txt").write_text("\n".join(lines) + "\n")

    lines = ["# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
    pts = model.points
    for i, (p, c, e) in enumerate(zip(pts.xyz, pts.rgb, pts.error)):
        lines.append(" ".join([str(i + 1), *map(repr, map(float, p)), *map(str, map(int, c)), repr(float(e))]))
    (model_dir / "points3D.txt").write_text("\n".join(lines) + "\n")
