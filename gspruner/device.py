"""`--device auto|cpu|cuda` -> torch.device, with a clear error when CUDA is asked for but absent."""

from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is False)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
