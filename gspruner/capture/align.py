"""How close recovered cameras are to reference ones: a similarity (Sim(3)) fit of the camera centres, then
per-camera rotation and centre errors. Used by the tests, `scripts/check_process.py` and `benchmark.py process`."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def model_cameras(model_dir: Path) -> dict[str, np.ndarray]:
    """image name -> [4,4] OpenCV camera-to-world pose of each image of a COLMAP model folder."""
    from ..data.colmap import read_model

    return {im.name: np.linalg.inv(im.world_to_camera()) for im in read_model(model_dir).images}


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising Σ‖target − (s R source + t)‖² over [n,3] points (Umeyama 1991, eqs. 40–42)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    sigma = xt.T @ xs / len(source)  # eq. 38
    u, d, vt = np.linalg.svd(sigma)
    flip = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[2, 2] = -1.0
    rotation = u @ flip @ vt
    variance_s = (xs ** 2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ flip) / variance_s)
    return scale, rotation, mu_t - scale * rotation @ mu_s


def pose_errors(c2w_recovered: np.ndarray, c2w_reference: np.ndarray) -> dict:
    """[n,4,4] OpenCV camera-to-world poses of the same n views: rotation errors (degrees) and centre errors
    (fraction of the reference cameras' spread, the RMS distance from their mean) after the Sim(3) fit."""
    scale, rotation, shift = umeyama(c2w_recovered[:, :3, 3], c2w_reference[:, :3, 3])
    centres = scale * c2w_recovered[:, :3, 3] @ rotation.T + shift
    reference = c2w_reference[:, :3, 3]
    spread = float(np.sqrt(((reference - reference.mean(0)) ** 2).sum(1).mean()))
    centre_error = np.linalg.norm(centres - reference, axis=1) / spread
    relative = np.einsum("ij,njk->nik", rotation, c2w_recovered[:, :3, :3])
    cos = (np.einsum("nji,nji->n", relative, c2w_reference[:, :3, :3]) - 1.0) / 2.0  # trace(Rᵀ R_ref)
    rotation_error = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return {"rotation_deg": rotation_error, "centre_fraction": centre_error, "scale": scale,
            "median_rotation_deg": float(np.median(rotation_error)),
            "median_centre_fraction": float(np.median(centre_error))}


def error_summary(errors: dict) -> dict:
    """`pose_errors`' figures as the process checks report them: median / max rotation (degrees) and centre error
    (% of the cameras' spread)."""
    return {"median_rotation_deg": errors["median_rotation_deg"], "max_rotation_deg": float(errors["rotation_deg"].max()),
            "median_centre_percent": 100 * errors["median_centre_fraction"],
            "max_centre_percent": 100 * float(errors["centre_fraction"].max())}
