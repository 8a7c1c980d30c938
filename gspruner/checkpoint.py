"""Checkpoints: splats + optimizers + scheduler + strategy/pruner state + step + config, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import InputError


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
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise InputError(f"{path}: not a readable gspruner checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "splats" not in ckpt:
        raise InputError(f"{path}: not a gspruner checkpoint (no 'splats')")
    return ckpt


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
