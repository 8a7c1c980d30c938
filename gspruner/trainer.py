"""The training loop. Orchestration only: data -> model -> render -> strategy/pruner -> outputs.

Nothing method-specific lives here: densification is a gsplat `Strategy`, pruning a `Pruner` with
hooks at fixed points of the step (see gspruner/pruning/base.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time

import numpy as np
import torch
import yaml
from tqdm import tqdm

from . import parallel
from .checkpoint import load_checkpoint, save_checkpoint, splats_from_state
from .config import DEMO_DIR, DEMO_GROW_GRAD2D, TrainConfig
from .data import load_scene
from .data.demo import ensure_demo_scene
from .data.normalize import shared_view_sphere
from .device import keep_freed_memory, resolve_device
from .errors import InputError
from .evaluation import evaluate, render_view
from .export import write_ply
from .metrics import l1, psnr, ssim
from .model import create_optimizers, random_points
from .model.gaussians import MEANS_LR_END, means_lr_schedule
from .model.family import model_family
from .pruning import PruneContext, pruner_name
from .render import cpu_backend
from .rundir import (check_resumable, check_result_dir, check_same_scene, config_dict, metrics_record,
                     recorded_strategy, run_writes, scene_fingerprint, write_text_atomic)
from .strategies import DefaultConfig, MCMCConfig, strategy_name
from .strategies.views import ViewSampler


class Trainer:
    """Validates everything first (nothing written on bad input), then trains, evaluates and exports."""

    def __init__(self, cfg: TrainConfig, init_ckpt: dict | None = None):
        """`init_ckpt`: the already-loaded checkpoint at `cfg.init_ckpt`, when the caller has read it."""
        self.cfg = cfg
        # The same run whether or not opt_einsum is installed (jax brings it): with it, torch reorders 3-operand
        # einsums such as gsplat's split sampling, and the rounding change alone moved the demo by 0.075 dB
        torch.backends.opt_einsum.enabled = False
        self.device = resolve_device(cfg.device)
        # torchrun: this process is one rank of several, owning a shard of the Gaussians (gspruner/parallel.py)
        self.rank, self.world_size = parallel.init_from_env(self.device)
        self.sharded = torch.distributed.is_available() and torch.distributed.is_initialized()  # launched by torchrun
        if self.sharded and self.device.type == "cuda":
            self.device = torch.device("cuda", torch.cuda.current_device())
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults on each step's large tensors (device.keep_freed_memory)
        check_result_dir(cfg)
        self.max_steps = cfg.steps()
        data_dir = cfg.data_dir if cfg.data_dir is not None else ensure_demo_scene(DEMO_DIR)
        self.scene = load_scene(
            data_dir, data_factor=cfg.data_factor, test_every=cfg.test_every, background=cfg.background,
            frame_step=cfg.frame_step, max_frames=cfg.max_frames,
        )
        if not self.scene.train:
            raise InputError(f"{data_dir}: no training images")
        self.scene.check_images()  # before anything is written
        self.background = self.scene.background  # evaluation background: None for opaque images
        self.model = model_family(self.scene)  # 3D, or 4D when the frames carry a time
        # strategy:auto picks by the scene; config.yml records what it picked (a copy: the caller's stays as it is),
        # and a resumed run keeps what it picked when it started (a sharded run resumed in one process, say)
        strategy = recorded_strategy(cfg.result_dir, cfg.strategy) if cfg.resume else cfg.strategy
        self.cfg = cfg = dataclasses.replace(cfg, strategy=strategy.for_scene(self.scene.has_alpha, self.model.name, self.sharded))
        if cfg.data_dir is None and isinstance(cfg.strategy, DefaultConfig) and cfg.strategy.grow_grad2d is None:
            # the demo's 128x96 images: its own growth threshold
            self.cfg = cfg = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, grow_grad2d=DEMO_GROW_GRAD2D))
        self._check_methods()
        self.resume_ckpt = None
        if cfg.resume:
            self.resume_ckpt = load_checkpoint(cfg.result_dir / "ckpt" / "last.pt")
            check_resumable(self.resume_ckpt["config"], config_dict(self.cfg), cfg.result_dir / "ckpt" / "last.pt")
        self.init_ckpt = None
        if cfg.init_ckpt is not None and not cfg.resume:
            self.init_ckpt = init_ckpt if init_ckpt is not None else load_checkpoint(cfg.init_ckpt)
            check_same_scene(self.init_ckpt, self.scene, cfg.init_ckpt)
        unknown = sorted(set(cfg.freeze) - {"means", "scales", "quats", "opacities", "sh0", "shN"})
        if unknown:
            raise InputError(f"--freeze: unknown parameter {', '.join(unknown)} (means scales quats opacities sh0 shN)")
        self.scene_scale = self.scene.scene_scale * 1.1  # gsplat simple_trainer (training cameras only)
        # 0: the full SH degree from the first step (fine-tuning)
        self.sh_interval = max(1, round(cfg.sh_degree_interval * self.max_steps / 30_000)) if cfg.sh_degree_interval > 0 else 0

    def _check_methods(self) -> None:
        """The options that depend on the model family: batch size, and the methods it accepts."""
        c, model = self.cfg, self.model.name
        self.batch_size = self.model.batch_size(c.batch_size)
        if model not in c.strategy.models:
            raise InputError(f"strategy:{strategy_name(c.strategy)} is for {' and '.join(c.strategy.models)} models; "
                             f"this scene trains a {model} model")
        if model not in c.prune.models:
            raise InputError(f"prune:{pruner_name(c.prune)} is for {' and '.join(c.prune.models)} models; "
                             f"this scene trains a {model} model")
        if self.sharded:
            self._check_sharded()

    def _check_sharded(self) -> None:
        """What a run over several ranks supports yet: one error line naming what is missing."""
        c, missing = self.cfg, []
        if not isinstance(c.strategy, (DefaultConfig, MCMCConfig)):
            missing.append(f"strategy:{strategy_name(c.strategy)} (sharded: default, mcmc)")
        elif getattr(c.strategy, "absgrad", False):
            missing.append("--strategy.absgrad")
        if pruner_name(c.prune) != "none":
            missing.append(f"prune:{pruner_name(c.prune)} (score and mask pruners see one shard)")
        if self.model.name != "3d":
            missing.append(f"{self.model.name} models")
        if self.batch_size != 1:
            missing.append("--batch-size > 1 (each rank renders one camera a step)")
        if c.viewer:
            missing.append("--viewer")
        sizes = sorted({(cam.width, cam.height) for cam in self.scene.train})
        if len(sizes) > 1 and self.world_size > 1:  # each step's cameras are rendered at one size on every rank
            shown = ", ".join(f"{w}x{h}" for w, h in sizes[:4]) + (", ..." if len(sizes) > 4 else "")
            missing.append(f"training images of different sizes ({shown})")
        if missing:
            raise InputError(f"training over {self.world_size} ranks does not support {', '.join(missing)} yet; "
                             "run it as one process")

    # -- setup -------------------------------------------------------------------------------
    def _init_splats(self) -> torch.nn.ParameterDict:
        c, scene = self.cfg, self.scene
        use_sfm = c.init_type == "sfm" or (c.init_type == "auto" and len(scene.points) > 0)
        if c.init_type == "sfm" and len(scene.points) == 0:
            raise InputError(f"{scene.data_dir}: --init-type sfm but the scene has no SfM points")
        if use_sfm:
            points, rgb = scene.points, scene.points_rgb
        else:
            center, half = self.random_init_cube()
            points, rgb = center + random_points(c.init_num_pts, half, seed=c.seed), None
        splats = self.model.create_splats(points, rgb, c.sh_degree, c.strategy.init_opacity, c.strategy.init_scale, c.seed)
        return splats.to(self.device)

    def random_init_cube(self) -> tuple[np.ndarray, float]:
        """(centre [3], half-size) of the random initial cube: --init-extent × scene scale when given; else for
        an object on a transparent background the sphere every training camera sees whole (the object's bounds,
        ~INRIA's ±1.3 on NeRF-synthetic), for an open scene gsplat's 3 × scene scale around the origin."""
        c, scene = self.cfg, self.scene
        if c.init_extent is not None:
            return np.zeros(3, np.float32), c.init_extent * self.scene_scale
        if scene.has_alpha:
            c2w = np.stack([cam.c2w.double().numpy() for cam in scene.train])
            half_fov_tan = np.array([min(cam.width / 2 / float(cam.K[0, 0]), cam.height / 2 / float(cam.K[1, 1]))
                                     for cam in scene.train])
            center, radius = shared_view_sphere(c2w, half_fov_tan)
            return center.astype(np.float32), radius
        return np.zeros(3, np.float32), 3.0 * self.scene_scale

    def _setup(self) -> None:
        c = self.cfg
        if self.device.type == "cpu":
            cpu_backend()  # builds the compiled rasterizer on first use, before any training time is counted
        if self.resume_ckpt is not None:
            state = self.resume_ckpt["splats"]
        elif self.init_ckpt is not None:
            state = self.init_ckpt["splats"]
        else:
            state = {k: v.detach() for k, v in self._init_splats().items()}
        self.num_total = len(state["means"])  # this rank's shard of them (all of them in one process)
        self.shard = parallel.shard_rows(self.num_total, self.rank, self.world_size)
        self.splats = splats_from_state(parallel.take_shard(state, self.num_total, self.shard), self.device)
        # fine-tuning a trained model continues at the end of its schedule: means lr at 1 %, constant
        fine_tune = c.init_ckpt is not None
        # the strategy's view callback (design contract 2): sampled training views and no-grad renders
        self.views = ViewSampler(self.scene.train, lambda cam: self.scene.image(cam).to(self.device), self._render_no_grad)
        strategy_cfg = c.strategy
        if self.world_size > 1 and isinstance(strategy_cfg, MCMCConfig):  # the budget is split over the ranks
            strategy_cfg = dataclasses.replace(strategy_cfg, cap_max=-(-strategy_cfg.cap_max // self.world_size))
        self.strategy = strategy_cfg.setup(self.max_steps, views=self.views, duration=self.model.duration)
        lrs = {**(self.strategy.learning_rates or {}), **self.model.learning_rates(self.scene_scale)}
        start, gamma = (MEANS_LR_END, 1.0) if fine_tune else means_lr_schedule(self.max_steps, c.means_lr_travel)
        self.optimizers = create_optimizers(self.splats, self.scene_scale * start, lrs=lrs)
        for name in c.freeze:  # kept as they are: checked in __init__
            for group in self.optimizers[name].param_groups:
                group["lr"] = 0.0
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizers["means"], gamma=gamma)
        self.strategy_state = self.strategy.initialize_state(self.scene_scale, self.scene.train_center)
        self.pruner = c.prune.setup(self._prune_context(), seed=c.seed)
        torch.manual_seed(c.seed)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.start_step, self.train_seconds, self.order = 0, 0.0, []
        self.current_sh_degree, self.last_num_rays, self.step_gates, self.current_step = 0, 0, {}, 0
        if self.resume_ckpt is not None:
            ck = self.resume_ckpt
            self.pruner.load_state_dict(ck.get("pruner", {}))
        self.pruner.attach(self.splats, self.optimizers)  # resumed inside a mask window: adds its optimizer
        self.strategy.check_sanity(self.splats, self.optimizers)
        if self.resume_ckpt is not None:
            n, rows = self.num_total, self.shard
            for name, opt in self.optimizers.items():
                opt.load_state_dict(parallel.take_shard(ck["optimizers"][name], n, rows))
            self.scheduler.load_state_dict(ck["scheduler"])
            self.strategy_state = _to_device(parallel.take_shard(ck["strategy_state"], n, rows), self.device)
            self.generator.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            self.order = list(ck.get("order", []))
            self.start_step = ck["step"] + 1
            self.train_seconds = ck.get("train_seconds", 0.0)

    def _prune_context(self) -> PruneContext:
        dev, scene = self.device, self.scene
        return PruneContext(
            views=lambda: ((cam, scene.image(cam).to(dev)) for cam in scene.train),
            device=dev, max_steps=self.max_steps, densify_stop_step=self.strategy.densify_stop_step(),
            sh_degree=self.cfg.sh_degree, background=self.background,
            near_plane=self.cfg.near_plane, far_plane=self.cfg.far_plane,
            frame_times=self.model.frame_times(scene),
        )

    def render_kwargs(self) -> dict:
        """The strategy's options for this step's renders (AbsGS gradient, FastGS's compact box); evaluation renders plain."""
        return self.strategy.render_kwargs(self.current_step)

    def training_render_kwargs(self) -> dict:
        """render_kwargs, plus every rank's Gaussians in this rank's camera when the run is sharded."""
        return {**self.render_kwargs(), **({"distributed": True} if self.sharded else {})}

    @torch.no_grad()
    def _render_no_grad(self, cam) -> tuple[torch.Tensor, dict]:
        """`cam` rendered as this step renders (SH degree, pruner gates), without gradients: (rgb [H,W,3], info)."""
        n = len(self.splats["means"])
        gates = {k: g.detach() for k, g in self.step_gates.items() if g is not None and g.shape[0] == n}
        rgb, _, info = render_view(self.splats, cam, self.device, self.current_sh_degree, self.background, **gates,
                                   near_plane=self.cfg.near_plane, far_plane=self.cfg.far_plane,
                                   **self.render_kwargs())  # absgrad only acts in a backward pass: none here
        return rgb, info


    # -- loop --------------------------------------------------------------------------------
    def _next_camera(self):
        """The next training camera; over several ranks, every rank draws one for each rank (the same sequence
        everywhere) and keeps its own."""
        drawn = []
        for _ in range(self.world_size):
            if not self.order:
                self.order = torch.randperm(len(self.scene.train), generator=self.generator).tolist()
            drawn.append(self.scene.train[self.order.pop()])
        return drawn[self.rank]

    def _photometric_loss(self, rgb: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(1 - λ)·L1 + λ·(1 - SSIM) over the pixels the image's mask keeps (all without one)."""
        lam = self.cfg.ssim_lambda
        return (1 - lam) * l1(rgb, gt, mask) + lam * (1 - ssim(rgb[None], gt[None], mask))

    def _regularization(self) -> torch.Tensor | float:
        loss = 0.0
        reg = self.cfg.strategy
        if reg.opacity_reg > 0:
            loss = loss + reg.opacity_reg * torch.sigmoid(self.splats["opacities"]).mean()
        if reg.scale_reg > 0:
            loss = loss + reg.scale_reg * torch.exp(self.splats["scales"]).mean()
        return loss

    def training_background(self):
        """A random colour per frame for images with alpha (gsplat's `random_bkgd`, splatfacto's "random"): a
        model composited on one fixed colour can paint that colour instead of covering the object."""
        if self.scene.has_alpha and self.cfg.random_background:
            return torch.rand(self.world_size, 3, generator=self.generator)[self.rank]  # one per rank, same draws
        return self.background

    def train_step(self, step: int) -> tuple[float, float]:
        """One optimisation step over a batch of frames (one camera each; a 4D model slices each at its time)."""
        c = self.cfg
        cams = [self._next_camera() for _ in range(self.batch_size)]
        sh_degree = min(step // self.sh_interval, c.sh_degree) if self.sh_interval else c.sh_degree
        self.current_sh_degree, self.last_num_rays = sh_degree, sum(cam.width * cam.height for cam in cams)
        self.current_step = step
        self.step_gates = {"opacity_gate": self.pruner.opacity_gate(step), "scale_gate": self.pruner.scale_gate(step)}
        frames, masks, frame_losses, loss = [], [], [], 0.0
        for cam in cams:
            background = self.training_background()
            gt = self.scene.image(cam, background).to(self.device)
            mask = _to_device(self.scene.mask(cam), self.device)  # None: every pixel counts
            rgb, _, info = render_view(
                self.splats, cam, self.device, sh_degree, background, **self.step_gates,
                active=self.pruner.active_mask(cam.time), near_plane=c.near_plane, far_plane=c.far_plane,
                **self.training_render_kwargs(),
            )
            frame_loss = self._photometric_loss(rgb, gt, mask)
            loss = loss + frame_loss / len(cams)  # 4DGS: loss / batch_size per frame
            frames.append((cam, gt, rgb, info))
            frame_losses.append(frame_loss)
            masks.append(mask)
        loss = loss + self._regularization()
        info = frames[0][3] if len(frames) == 1 else [f[3] for f in frames]  # gsplat's strategies take one info
        extra = self.pruner.extra_loss(step)
        if extra is not None:
            loss = loss + extra
        if len(frames) == 1:
            self.views.record(*frames[0], loss=frame_losses[0])  # a strategy sampling views reuses this render
        self.strategy.step_pre_backward(self.splats, self.optimizers, self.strategy_state, step, info)
        loss.backward()
        held = self.strategy.held_optimizers(step)  # their gradients accumulate to a later step
        for name, opt in self.optimizers.items():
            if name not in held:
                opt.step()
                opt.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.strategy.step_post_backward(
            self.splats, self.optimizers, self.strategy_state, step, info,
            **self.strategy.post_backward_kwargs(self.scheduler.get_last_lr()[0]),
        )
        self.views.clear()
        self.pruner.after_step(step, self.splats, self.optimizers, self.strategy_state)
        mse = sum(10 ** (-psnr(rgb, gt, mask) / 10) for (_, gt, rgb, _), mask in zip(frames, masks)) / len(frames)
        return loss.item(), -10 * math.log10(max(mse, 1e-10))

    def checkpoint_payload(self, step: int) -> dict | None:
        """The checkpoint; over several ranks the shards merged in rank order, on rank 0 (None elsewhere):
        collective, every rank calls it at the same step."""
        n = len(self.splats["means"])
        shard_state = {
            "splats": {k: v.detach().cpu() for k, v in self.splats.items()},
            "optimizers": {k: _to_device(o.state_dict(), "cpu") for k, o in self.optimizers.items()},
            "strategy_state": _to_device(self.strategy_state, "cpu"),
        }
        merged, sizes = parallel.gather_to_rank0(shard_state, n)
        if merged is None:
            return None
        return {
            "step": step,
            **merged,
            "world_size": self.world_size,
            "gaussians_per_rank": sizes,
            "scheduler": self.scheduler.state_dict(),
            "pruner": self.pruner.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "order": list(self.order),
            "train_seconds": self.train_seconds,
            "config": config_dict(self.cfg),
            "scene": scene_fingerprint(self.scene),
        }

    def _start_viewer(self):
        from .viewer import TrainingViewer

        viewer = TrainingViewer(lambda: self.splats, lambda: self.current_sh_degree, self.device,
                                port=self.cfg.port, output_dir=self.cfg.result_dir,
                                background=self.background or (0.0, 0.0, 0.0), max_sh_degree=self.cfg.sh_degree,
                                scene_scale=self.scene.scene_scale, time_range=self.model.time_range)
        tqdm.write(f"viewer: {viewer.url}")
        return viewer

    def train(self) -> dict | None:
        """Train, evaluate, write the run directory; returns metrics.json's record (None on ranks other than 0
        of a sharded run: rank 0 alone writes)."""
        c, r = self.cfg, self.cfg.result_dir
        self._setup()
        parallel.barrier()  # every rank has checked its input before rank 0 writes anything
        viewer = self._start_viewer() if c.viewer else None  # a busy port fails before anything is written
        try:
            if self.rank != 0:
                return self._train_loop(viewer)
            with run_writes(r, overwrite=c.overwrite, resume=c.resume):  # bad input found mid-run: as it was
                write_text_atomic(r / "config.yml", yaml.safe_dump(config_dict(self.cfg), sort_keys=False))
                return self._train_loop(viewer)
        finally:
            if viewer is not None:
                viewer.complete()

    def _train_loop(self, viewer) -> dict:
        c, r = self.cfg, self.cfg.result_dir
        log = (r / "log.jsonl").open("a") if self.rank == 0 else None
        bar = tqdm(range(self.start_step, self.max_steps), initial=self.start_step, total=self.max_steps,
                   desc="train", disable=not c.progress or self.rank != 0, dynamic_ncols=True)
        step = self.start_step - 1
        tic = time.perf_counter()
        try:
            for step in bar:
                if viewer is None:
                    loss, train_psnr = self.train_step(step)
                else:
                    viewer.wait_if_paused()
                    with viewer.lock:
                        loss, train_psnr = self.train_step(step)
                    viewer.after_step(step, self.last_num_rays)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}", psnr=f"{train_psnr:.2f}", gs=len(self.splats["means"]))
                if (step % c.log_every == 0 or step == self.max_steps - 1) and log is not None:
                    seconds = self.train_seconds + time.perf_counter() - tic
                    record = {"step": step, "loss": loss, "psnr": train_psnr, "num_gaussians": len(self.splats["means"]),
                              "seconds": seconds}  # fmt: skip
                    if self.world_size > 1:  # rank 0's shard and camera
                        record.update(rank0_gaussians=record.pop("num_gaussians"), world_size=self.world_size)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if c.save_every > 0 and (step + 1) % c.save_every == 0 and step + 1 < self.max_steps:
                    self._save(step, tic, keep_copy=True)
                if c.eval_every > 0 and (step + 1) % c.eval_every == 0 and step + 1 < self.max_steps:
                    splats = self._all_splats()
                    if splats is not None:
                        m = evaluate(splats, self.scene, self.device, c.sh_degree, with_lpips=False,
                                     active_fn=self.pruner.active_mask)
                        tqdm.write(f"step {step + 1}: test PSNR {m['psnr']:.3f} SSIM {m['ssim']:.4f}")
        except KeyboardInterrupt:
            if self.world_size > 1:  # the ranks stop at different points: no collective save is possible
                if self.rank == 0:
                    tqdm.write(f"interrupted: {r / 'ckpt' / 'last.pt'} is the last complete checkpoint")
                raise
            self._save(step, tic)
            tqdm.write(f"interrupted: saved {r / 'ckpt' / 'last.pt'} at step {step}; continue with --resume")
            raise
        finally:
            bar.close()
            if log is not None:
                log.close()
        self.train_seconds += time.perf_counter() - tic
        return self.finish(step)

    def _all_splats(self):
        """Every rank's Gaussians, merged on rank 0 (None elsewhere); this process' own in one process. Collective."""
        if self.world_size == 1:
            return self.splats
        merged, _ = parallel.gather_to_rank0({k: v.detach().cpu() for k, v in self.splats.items()},
                                             len(self.splats["means"]))
        return None if merged is None else splats_from_state(merged, self.device)

    def _save(self, step: int, tic: float, keep_copy: bool = False) -> None:
        payload = self.checkpoint_payload(step)  # collective over the ranks
        if payload is None:
            return
        payload["train_seconds"] = self.train_seconds + time.perf_counter() - tic
        save_checkpoint(self.cfg.result_dir / "ckpt" / "last.pt", payload)
        if keep_copy:  # a new file, never one rewritten in place (rundir.run_writes)
            ckpt_dir = self.cfg.result_dir / "ckpt"
            shutil.copyfile(ckpt_dir / "last.pt", ckpt_dir / "step.tmp")
            os.replace(ckpt_dir / "step.tmp", ckpt_dir / f"step_{step + 1:06d}.pt")

    def finish(self, step: int) -> dict | None:
        c, r = self.cfg, self.cfg.result_dir
        payload = self.checkpoint_payload(step)  # collective over the ranks: rank 0 gets every shard
        if payload is None:
            return None
        save_checkpoint(r / "ckpt" / "last.pt", payload)
        if self.world_size > 1:  # from here on rank 0 alone, on the merged model
            self.splats = splats_from_state(payload["splats"], self.device)
        ply_splats, extra = self.model.ply_splats(self.splats)  # a 4D model: its 3D snapshot at mid-sequence
        write_ply(r / "point_cloud.ply", ply_splats)
        extra.update(self.model.metrics(self.batch_size))
        if self.sharded:
            extra.update(world_size=self.world_size, gaussians_per_rank=payload["gaussians_per_rank"])
        split = "test" if self.scene.test else "train"
        m = evaluate(self.splats, self.scene, self.device, c.sh_degree, split=split,
                     render_dir=r / "renders" if c.save_renders else None, with_lpips=c.lpips,
                     active_fn=self.pruner.active_mask, time_range=self.model.time_range)
        if self.pruner.active_mask(self.model.start_time) is not None:  # a temporal filter: also without it
            u = evaluate(self.splats, self.scene, self.device, c.sh_degree, split=split, with_lpips=False)
            extra.update(psnr_unfiltered=u["psnr"], ssim_unfiltered=u["ssim"], render_fps_unfiltered=u["render_fps"],
                         mean_rasterized_unfiltered=u["mean_rasterized"])
        metrics = metrics_record(
            m, extra, self.pruner.summary(), num_gaussians=len(self.splats["means"]), train_seconds=self.train_seconds,
            steps=self.max_steps, strategy=strategy_name(c.strategy), device=self.device,
            rasterizer="gsplat" if self.device.type == "cuda" else cpu_backend(),  # CPU: compiled | torch
            data_dir=self.scene.data_dir, data_factor=c.data_factor, ply=r / "point_cloud.ply")
        write_text_atomic(r / "metrics.json", json.dumps(metrics, indent=2))
        return metrics


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj
