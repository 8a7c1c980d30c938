"""The run directory: what a run leaves in --result-dir (RUN_FILES), the overwrite / resume rules, the resolved
config written as config.yml, the scene fingerprint a checkpoint carries, and the metrics.json record."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .config import TrainConfig
from .errors import InputError
from .model.family import model_family
from .pruning import pruner_name
from .strategies import strategy_name

RUN_FILES = ("config.yml", "metrics.json", "log.jsonl", "ckpt", "renders", "point_cloud.ply")


def check_result_dir(cfg: TrainConfig) -> None:
    """Refuse to clobber another run unless --overwrite; --resume needs a checkpoint."""
    r = cfg.result_dir  # --overwrite with --resume: refused by TrainConfig itself
    if r.exists() and not r.is_dir():
        raise InputError(f"{r}: --result-dir exists and is not a directory")
    if cfg.resume:
        if not (r / "ckpt" / "last.pt").is_file():
            raise InputError(f"{r / 'ckpt' / 'last.pt'}: nothing to resume (no checkpoint)")
        return
    holds_run = r.is_dir() and any((r / name).exists() for name in RUN_FILES)
    if holds_run and not cfg.overwrite:
        raise InputError(f"{r}: already holds a run; pass --resume to continue it or --overwrite to replace it")


def config_dict(cfg: TrainConfig) -> dict:
    def plain(v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return list(v)
        return v

    d = dataclasses.asdict(cfg)
    if cfg.data_dir is not None:  # absolute: the checkpoint and config.yml still name it from another directory
        d["data_dir"] = absolute_path(cfg.data_dir)
    d["prune"] = {"name": pruner_name(cfg.prune), **d["prune"]}  # each method and its options
    d["strategy"] = {"name": strategy_name(cfg.strategy), **d["strategy"]}
    d = {k: ({kk: plain(vv) for kk, vv in v.items()} if isinstance(v, dict) else plain(v)) for k, v in d.items()}
    d["max_steps"] = cfg.steps()
    return d


def recorded_strategy(result_dir: Path, requested):
    """For --resume with strategy:auto: the strategy `config_dict` recorded in `result_dir`'s config.yml (its name
    and options), else `requested`."""
    import yaml

    from .strategies import STRATEGIES, AutoConfig

    config_file = Path(result_dir) / "config.yml"
    if type(requested) is not AutoConfig or not config_file.is_file():
        return requested
    recorded = (yaml.safe_load(config_file.read_text()) or {}).get("strategy")
    if not isinstance(recorded, dict) or recorded.get("name") not in STRATEGIES:
        return requested
    config = STRATEGIES[recorded["name"]]
    fields = {f.name for f in dataclasses.fields(config)}
    return config(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items() if k in fields})


def absolute_path(path) -> str:
    """`path` made absolute (against the working directory) and normalized, as a string."""
    return str(Path(os.path.abspath(Path(path).expanduser())))


def check_resumable(old: dict, new: dict, ckpt_path: Path) -> None:
    """--resume continues the same run: `old` (the checkpoint's config_dict) must match `new` where it matters."""
    if isinstance(old.get("strategy"), str):  # written before strategies had configs: compare the name
        old = {**old, "strategy": new["strategy"] if old["strategy"] == new["strategy"]["name"] else old["strategy"]}
    if isinstance(old.get("prune"), str):  # written before pruners had configs (a name and loose options)
        if old["prune"] != "none" or new["prune"]["name"] != "none":
            raise InputError(f"{ckpt_path}: was trained by an older gspruner with "
                             f"--prune {old['prune']} (its options not recorded), this command has "
                             f"prune:{new['prune']['name']}; use --overwrite for a new run")
        old = {**old, "prune": new["prune"]}
    if old.get("data_dir") is not None and new.get("data_dir") is not None:  # older runs stored it as typed
        old = {**old, "data_dir": absolute_path(old["data_dir"])}
    for key in ("data_dir", "data_factor", "test_every", "strategy", "sh_degree", "prune", "init_ckpt"):
        if old.get(key) != new.get(key):
            raise InputError(
                f"{ckpt_path}: was trained with {key}={old.get(key)!r}, "
                f"this command has {new.get(key)!r}; use --overwrite for a new run"
            )


def metrics_record(evaluation: dict, model_extra: dict, pruner_summary: dict, *, num_gaussians: int,
                   train_seconds: float, steps: int, strategy: str, device: torch.device, rasterizer: str,
                   data_dir: Path, data_factor: int, ply: Path) -> dict:
    """metrics.json: the evaluation, what the model family and the pruner report, and how the run was made;
    the evaluation's per-view list last."""
    per_view = evaluation.get("per_view", [])
    return {
        **{k: v for k, v in evaluation.items() if k != "per_view"},
        **model_extra,
        "num_gaussians": num_gaussians,
        "train_seconds": train_seconds,
        "steps": steps,
        "strategy": strategy,
        "prune": "none",
        "num_gaussians_before_prune": None,
        "prune_ratio": None,
        **pruner_summary,
        "device": str(device),
        "rasterizer": rasterizer,
        "data_dir": str(data_dir),
        "data_factor": data_factor,
        "ply_mb": ply.stat().st_size / 1e6,
        # peak GPU memory of this process (training + evaluation), for the benchmark's memory column
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 1e6 if device.type == "cuda" else None,
        "per_view": per_view,
    }


def remove_run_files(result_dir: Path, names=RUN_FILES) -> None:
    """Delete what a run leaves in `result_dir` (RUN_FILES, or those of `names`), nothing else."""
    for name in names:
        p = result_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


@contextlib.contextmanager
def run_writes(result_dir: Path, *, overwrite: bool = False, resume: bool = False):
    """Make `result_dir` for a run and undo the run's writes if it stops on bad input (an InputError, also one
    found mid-run: an image that fails to decode when it is first read), so the directory is left as it was:

    - a new run: the files it wrote are removed, and the directory too (with any parents) if the run made it;
    - --overwrite: the previous run's files are moved aside when the run starts, put back on bad input and
      deleted once the run is done;
    - --resume: the run's files are hard-linked aside (every file a run rewrites is replaced, never written in
      place: checkpoints, PLY, config.yml, metrics.json, renders) and put back; log.jsonl, appended to, is cut
      back to its length.

    A Ctrl-C or a crash that is not bad input keeps what was written (the checkpoint resumes).
    """
    r = result_dir
    top = r  # the first folder of `r`'s path that does not exist yet: the run makes it
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    made = not r.exists()
    aside = None
    if (overwrite or resume) and r.is_dir() and any((r / name).exists() for name in RUN_FILES):
        aside = Path(tempfile.mkdtemp(prefix=".replaced-run-", dir=r))
        for name in RUN_FILES:
            src = r / name
            if not src.exists() or (resume and name == "log.jsonl"):
                continue
            if overwrite:
                src.rename(aside / name)
            elif src.is_dir():
                shutil.copytree(src, aside / name, copy_function=_link_or_copy)
            else:
                _link_or_copy(src, aside / name)
    log = r / "log.jsonl"
    log_size = log.stat().st_size if resume and log.is_file() else None
    r.mkdir(parents=True, exist_ok=True)
    try:
        yield r
    except InputError:
        if made:
            shutil.rmtree(top, ignore_errors=True)
        else:
            remove_run_files(r, [name for name in RUN_FILES if not (resume and name == "log.jsonl")])
            for item in aside.iterdir() if aside is not None else ():
                item.rename(r / item.name)
            if log_size is not None:
                with log.open("r+b") as f:
                    f.truncate(log_size)
        raise
    finally:
        if aside is not None and aside.exists():
            shutil.rmtree(aside, ignore_errors=True)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and os.replace (see run_writes: --resume links files aside)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def scene_fingerprint(scene) -> dict:
    """What identifies the scene a checkpoint was trained on: its folder (absolute), kind, the names of all its
    images (whatever the split) and of the training ones."""
    fingerprint = {"data_dir": absolute_path(scene.data_dir), "kind": scene.kind, "scene_scale": scene.scene_scale,
                   "background": list(scene.background) if scene.background is not None else None,
                   "images": sorted(cam.name for cam in scene.train + scene.test),
                   "train_images": [cam.name for cam in scene.train], "masked": scene.masked}
    span = model_family(scene).time_range
    if span is not None:  # a 4D model: the span of its training frames (the viewer's time slider)
        fingerprint["time_range"] = list(span)
    return fingerprint


def check_same_scene(ckpt: dict, scene, ckpt_path) -> None:
    """A checkpoint must come from this scene and hold consistent splats. The same scene: the same image names
    (any split; a checkpoint from before they were all stored: its training images are all in the scene)."""
    counts = {k: v.shape[0] for k, v in ckpt["splats"].items()}
    if len(set(counts.values())) != 1:
        raise InputError(f"{ckpt_path}: inconsistent Gaussian counts across parameters {counts}")
    fingerprint = ckpt.get("scene") or {}
    names = fingerprint.get("images")
    mine = sorted(cam.name for cam in scene.train + scene.test)
    if names is not None:
        differ = sorted(names) != mine
    else:
        names = fingerprint.get("train_images")
        differ = names is not None and not set(names) <= set(mine)
    if differ:
        stray = sorted(set(names) - set(mine)) or sorted(set(mine) - set(names))
        raise InputError(f"{ckpt_path}: trained on another scene ({fingerprint.get('data_dir')}, {len(names)} images) "
                         f"than {scene.data_dir} ({len(mine)} images" + (f"; {stray[0]!r} is in one only)" if stray else ")"))
