"""Training over several processes (torchrun): the process group, each rank's shard, merged checkpoints.

`torchrun --nproc_per_node N -m gspruner.cli train ...` starts N ranks. Each owns a contiguous shard of the
Gaussians (rank r: rows [r·⌈n/N⌉, (r+1)·⌈n/N⌉) of the initial points or of a checkpoint) with its own
optimizer and densification state, and renders its own camera each step (render/distributed.py shares the
Gaussians between ranks). Checkpoints are merged: every per-Gaussian tensor (splats, Adam moments, the
strategy's accumulators) is concatenated in rank order on rank 0, so a checkpoint is the same file whatever
the world size, and `--resume` splits it again for the current one. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

from .render.distributed import world  # (rank, world size); (0, 1) without a process group

__all__ = ["launched", "init_from_env", "world", "shard_rows", "take_shard", "merge_shards", "gather_to_rank0", "barrier",
           "shutdown"]

TIMEOUT = datetime.timedelta(minutes=10)  # a collective that waits longer than this ends the run


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE and MASTER_ADDR) started this process."""
    return "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes (one rank included: the sharded path's smoke run), NCCL on
    CUDA (one GPU per local rank), gloo on CPU. Returns (rank, world size); (0, 1) when not launched."""
    if not launched():
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return world()


def shard_rows(n: int, rank: int, size: int) -> slice:
    """Rank `rank`'s rows of n (contiguous, sizes differ by at most one block)."""
    per = -(-n // size)
    return slice(min(n, rank * per), min(n, (rank + 1) * per))


# state entries that are never per-Gaussian, whatever their shape (MCMC's binomial table is [51, 51])
NOT_PER_GAUSSIAN = ("binoms",)


def take_shard(obj: Any, n: int, rows: slice) -> Any:
    """`obj` with every tensor whose first dimension is n cut to `rows` (dicts and lists recursively)."""
    if isinstance(obj, torch.Tensor):
        return obj[rows].clone() if obj.dim() > 0 and obj.shape[0] == n else obj
    if isinstance(obj, dict):
        return {k: v if k in NOT_PER_GAUSSIAN else take_shard(v, n, rows) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(take_shard(v, n, rows) for v in obj)
    return obj


def merge_shards(parts: list, sizes: list[int]) -> Any:
    """The inverse of take_shard: tensors whose first dimension is their rank's Gaussian count are
    concatenated in rank order; anything else is rank 0's."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if first.dim() > 0 and all(p.dim() > 0 and p.shape[0] == s for p, s in zip(parts, sizes)):
            return torch.cat(parts)
        return first
    if isinstance(first, dict):
        return {k: first[k] if k in NOT_PER_GAUSSIAN else merge_shards([p[k] for p in parts], sizes) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(merge_shards([p[i] for p in parts], sizes) for i in range(len(first)))
    return first


def gather_to_rank0(obj: Any, num_local: int) -> tuple[Any, list[int] | None]:
    """Every rank's `obj` (its shard's state, with num_local Gaussians) merged on rank 0, and the Gaussians
    of each rank; (None, None) elsewhere. Collective: every rank calls it."""
    rank, size = world()
    if size == 1:
        return obj, [num_local]
    parts = [None] * size if rank == 0 else None
    dist.gather_object((obj, num_local), parts, dst=0)
    if rank != 0:
        return None, None
    sizes = [p[1] for p in parts]
    return merge_shards([p[0] for p in parts], sizes), sizes


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
