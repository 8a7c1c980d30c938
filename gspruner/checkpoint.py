"""Checkpoints: splats + optimizers + scheduler + strategy/pruner state + step + config, written atomically.

Every command reads checkpoints through `load_checkpoint`, which unpickles with `weights_only=True`: tensors,
plain Python values and the few types of SAFE_GLOBALS, never a call to anything else. A checkpoint from
someone else therefore cannot run code here; one whose pickle asks for more is refused with one line.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from .errors import InputError


def _numpy_scalar_globals() -> list:
    """What a NumPy scalar (np.float64 from a NumPy computation stored as a plain number) pickles as: its
    reconstructor, np.dtype and the dtype classes of the numeric types."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    kinds = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
             np.uint32, np.uint64, np.bool_)
    return [scalar, np.dtype, *(type(np.dtype(k)) for k in kinds)]


# Beyond torch's own allow-list (tensors, containers, numbers, strings): the types a gspruner checkpoint may hold.
# Each only builds a value; none calls anything else.
SAFE_GLOBALS = [pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath,
                *_numpy_scalar_globals()]


def save_checkpoint(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if refused:
            raise InputError(f"{path}: refused, its pickle calls {refused.group(1)}, which a gspruner checkpoint "
                             f"never holds (loading it could run any code); only tensors and plain values are "
                             f"read") from None
        raise InputError(f"{path}: not a readable gspruner checkpoint ({_one_line(exc)})") from None
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise InputError(f"{path}: not a readable gspruner checkpoint ({type(exc).__name__}: {_one_line(exc)})") from None
    if not isinstance(ckpt, dict) or "splats" not in ckpt:
        raise InputError(f"{path}: not a gspruner checkpoint (no 'splats')")
    return ckpt


def _one_line(exc: Exception) -> str:
    text = str(exc)
    text = text.split("WeightsUnpickler error:", 1)[-1]  # torch's advice to reload unsafely is left out
    return " ".join(text.split())[:300]


def temporal_filter_of(ckpt: dict, device):
    """The key-frame temporal filter a 4D checkpoint was pruned with (prune:spatiotemporal), or None."""
    from .pruning.spatiotemporal import TemporalFilter

    state = (ckpt.get("pruner") or {}).get("filter")
    return None if state is None else TemporalFilter.from_state(state, device)


def splats_from_state(state: dict, device) -> torch.nn.ParameterDict:
    return torch.nn.ParameterDict(
        {k: torch.nn.Parameter(v.to(device).float().contiguous()) for k, v in state.items()}
    )


def trained_scene(ckpt: dict, data_dir=None, data_factor: int | None = None, test_every: int | None = None):
    """The scene a checkpoint was trained on, as it was loaded then (its data_dir, factor, test split and
    background), each of the first three overridden when given."""
    from .data import load_scene

    trained = ckpt["config"]
    return load_scene(
        data_dir if data_dir is not None else ckpt["scene"]["data_dir"],
        data_factor=data_factor if data_factor is not None else trained["data_factor"],
        test_every=test_every if test_every is not None else trained["test_every"],
        background=tuple(trained["background"]),
    )
