"""INRIA 3DGS PLY writer/reader: bit-exact round trip, layout, NaN handling, bad files, gsplat interop."""

import os

import numpy as np
import plyfile
import pytest
import torch

from gspruner.errors import InputError
from gspruner.export import read_ply, write_ply

# graphdeco-inria/gaussian-splatting GaussianModel.construct_list_of_attributes for SH degree 3
INRIA_SH3_PROPERTIES = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    + [f"f_rest_{i}" for i in range(45)]
    + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
)


def make_splats(n: int = 50, sh_degree: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return {
        "means": torch.randn(n, 3, generator=g) * 10,
        "scales": torch.randn(n, 3, generator=g) - 4,
        "quats": torch.randn(n, 4, generator=g) * 3,  # deliberately not normalized
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, k - 1, 3, generator=g) * 0.1,
    }


def assert_splats_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == torch.float32 and a[key].device.type == "cpu", key
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key].float().cpu()), key


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_round_trip_is_bit_exact(tmp_path, sh_degree):
    splats = make_splats(sh_degree=sh_degree)
    path = tmp_path / "scene.ply"
    assert write_ply(path, splats) == 50
    back = read_ply(path)
    assert_splats_equal(back, splats)
    assert back["shN"].shape == (50, (sh_degree + 1) ** 2 - 1, 3)
    assert os.path.getsize(path) - len(_header(path)) == 50 * 4 * (17 + 3 * ((sh_degree + 1) ** 2 - 1))


def _header(path) -> bytes:
    data = path.read_bytes()
    return data[: data.index(b"end_header\n") + len(b"end_header\n")]


def test_header_is_inria_layout(tmp_path):
    splats = make_splats(n=4)
    path = tmp_path / "scene.ply"
    write_ply(path, splats)
    ply = plyfile.PlyData.read(str(path))
    assert [e.name for e in ply.elements] == ["vertex"]
    assert ply.byte_order == "<" and not ply.text
    assert [p.name for p in ply["vertex"].properties] == INRIA_SH3_PROPERTIES
    assert all(p.val_dtype == "f4" for p in ply["vertex"].properties)
    assert _header(path).startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\n")
    v = ply["vertex"].data
    assert np.all(v["nx"] == 0) and np.all(v["ny"] == 0) and np.all(v["nz"] == 0)
    # channel-major f_rest: coefficient j of channel c is f_rest_{c*15 + j}
    sh_rest = splats["shN"]  # [N,15,3]
    assert v["f_rest_0"][2] == sh_rest[2, 0, 0]  # R, first coefficient
    assert v["f_rest_14"][2] == sh_rest[2, 14, 0]  # R, last coefficient
    assert v["f_rest_15"][2] == sh_rest[2, 0, 1]  # G, first coefficient
    assert v["f_rest_44"][2] == sh_rest[2, 14, 2]  # B, last coefficient
    assert v["rot_0"][1] == splats["quats"][1, 0]  # w first
    assert v["opacity"][3] == splats["opacities"][3]


def test_non_finite_splats_dropped_with_warning(tmp_path):
    splats = make_splats(n=10)
    splats["opacities"][2] = float("nan")
    splats["shN"][5, 7, 1] = float("inf")
    splats["means"][8, 0] = -float("inf")
    path = tmp_path / "scene.ply"
    with pytest.warns(UserWarning, match="dropped 3 of 10 splats"):
        assert write_ply(path, splats) == 7
    keep = torch.tensor([i not in (2, 5, 8) for i in range(10)])
    assert_splats_equal(read_ply(path), {k: v[keep] for k, v in splats.items()})


def test_all_nan_raises_and_writes_nothing(tmp_path):
    splats = make_splats(n=3)
    splats["scales"][:, 1] = float("nan")
    with pytest.raises(InputError, match="no finite splats"):
        write_ply(tmp_path / "scene.ply", splats)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "scene.ply"
    write_ply(path, make_splats(n=5, seed=1))
    write_ply(path, make_splats(n=7, seed=2))
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]
    assert_splats_equal(read_ply(path), make_splats(n=7, seed=2))


def test_accepts_parameters_and_missing_shN(tmp_path):
    splats = {k: torch.nn.Parameter(v) for k, v in make_splats(n=6, sh_degree=0).items() if k != "shN"}
    write_ply(tmp_path / "a.ply", splats)
    back = read_ply(tmp_path / "a.ply")
    assert back["shN"].shape == (6, 0, 3)
    assert torch.equal(back["means"], splats["means"].detach())


def test_bad_splat_shapes_raise_value_error(tmp_path):
    splats = make_splats(n=6)
    splats["quats"] = splats["quats"][:, :3]
    with pytest.raises(ValueError, match="quats"):
        write_ply(tmp_path / "a.ply", splats)


def test_truncated_file_raises_input_error(tmp_path):
    path = tmp_path / "scene.ply"
    write_ply(path, make_splats(n=20))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="scene.ply.*early end-of-file"):
        read_ply(path)
    path.write_bytes(_header(path)[:60])  # cut inside the header
    with pytest.raises(InputError, match="scene.ply"):
        read_ply(path)


def test_text_file_renamed_ply_raises_input_error(tmp_path):
    path = tmp_path / "notes.ply"
    path.write_text("these are my notes\nnot a point cloud\n")
    with pytest.raises(InputError, match="notes.ply.*expected 'ply'"):
        read_ply(path)
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="notes.ply"):
        read_ply(path)
    with pytest.raises(InputError, match="missing.ply: file not found"):
        read_ply(tmp_path / "missing.ply")


def test_missing_properties_raise_input_error(tmp_path):
    points = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1")])
    path = tmp_path / "points.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(points, "vertex")]).write(str(path))
    with pytest.raises(InputError, match="points.ply.*lacks properties f_dc_0"):
        read_ply(path)
    faces = np.zeros(2, dtype=[("a", "<i4")])
    plyfile.PlyData([plyfile.PlyElement.describe(faces, "face")]).write(str(path))
    with pytest.raises(InputError, match="points.ply: PLY file has no 'vertex' element"):
        read_ply(path)


def test_reads_gsplat_exporter_ply(tmp_path):
    exporter = pytest.importorskip("gsplat.exporter", reason="gsplat.exporter not importable")
    for sh_degree in (0, 3):
        splats = make_splats(n=30, sh_degree=sh_degree, seed=sh_degree)
        path = tmp_path / f"gsplat_sh{sh_degree}.ply"
        exporter.export_splats(**splats, format="ply", save_to=str(path))
        names = [p.name for p in plyfile.PlyData.read(str(path))["vertex"].properties]
        assert "nx" not in names  # gsplat's layout omits the normals
        assert_splats_equal(read_ply(path), splats)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_in_cpu_tensors_out(tmp_path):
    splats = make_splats(n=8)
    write_ply(tmp_path / "a.ply", {k: v.cuda() for k, v in splats.items()})
    assert_splats_equal(read_ply(tmp_path / "a.ply"), splats)
