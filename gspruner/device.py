"""`--device auto|cpu|cuda` -> torch.device, with a clear error when CUDA is asked for but absent; and the CPU
allocator setting that CPU training runs with."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

from .errors import InputError

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_kept: bool | None = None


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is False)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of returning it to the system (Linux only; once per
    process; returns whether the setting is in force).

    A CPU training step frees and allocates the same large tensors every time (SH gradients alone are
    N x 48 floats, 56 MB on fox's 290k Gaussians). glibc serves blocks over 32 MB with mmap and unmaps them
    on free, so each step page-faults them in again: 22 of 140 ms a step on fox. With mmap off
    (M_MMAP_MAX = 0) and the heap top never trimmed below 1 GiB free, a block is reused from the heap.
    PyTorch's CPU tuning guide gets the same with jemalloc or tcmalloc preloaded."""
    global _kept
    if _kept is None:
        _kept = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                _kept = False
    return _kept
