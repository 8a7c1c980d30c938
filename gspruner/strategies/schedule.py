"""Schedules for runs shorter than 30k steps: gsplat's and FastGS's step counts scaled, with floors."""

from __future__ import annotations

from dataclasses import replace

from ..model.gaussians import REFERENCE_STEPS  # gsplat's schedules are written for 30k steps

_STEP_FIELDS = (
    "refine_start_iter",
    "refine_stop_iter",
    "reset_every",
    "refine_every",
    "refine_scale2d_stop_iter",
    "pause_refine_after_reset",
    "final_prune_iters",  # FastGS (tuples scale element-wise)
    "sh_step_every",
    "sparse_step_iters",
    "sparse_step_every",
    "compact_box_stop_iter",
)


MIN_REFINE_EVERY = 10  # steps between refinements at least: the averaged 2D gradient needs a few views
MIN_RESET_EVERY = 200  # steps between opacity resets at least: an opacity needs ~100 Adam steps to recover


def scale_schedule(strategy, max_steps: int):
    """Every step-valued field × max_steps / 30k (at least 1 where it was ≥ 1; tuples element-wise).

    Floors, for runs shorter than 30k steps:
    - `refine_every` ≥ MIN_REFINE_EVERY (10) steps: a refinement averages the 2D gradient over the views seen
      since the last one, and over 3 views (100 × 1k/30k) densification runs away. From 3000 steps on a run
      refines as often as the 30k schedule (144 refinements at gsplat's defaults); a 1000-step run 48 times.
    - `reset_every` scales exactly, so a run keeps the 30k schedule's opacity resets (gsplat's 3000 of 30k: 4
      resets before densification stops at 15k, at 10, 20, 30 and 40 % of the run), down to a floor of
      MIN_RESET_EVERY (200) steps: Adam at the opacity lr (0.05, FastGS 0.025) needs ~100 steps to bring a
      logit from the reset value (0.01) back above 0.5, and refinements in between need recovered opacities
      (the 30k schedule spends ~3 % of each interval recovering; at 100 steps apart it would spend all of it,
      and the demo loses 0.6 dB). So runs of ≥ 2000 steps keep all 4 resets; shorter ones fewer (1000 steps:
      2, at 200 and 400; 500 steps: 1; FastGS, densifying until 50 %, as many).
    """
    s = max_steps / REFERENCE_STEPS
    changes, values = {}, vars(strategy)  # a dataclass: its fields by name
    for name in _STEP_FIELDS:
        value = values.get(name)
        if isinstance(value, int) and value > 0:
            changes[name] = max(1, round(value * s))
        elif isinstance(value, tuple):
            changes[name] = tuple(max(1, round(v * s)) for v in value)
    if "refine_every" in changes:
        every = max(changes["refine_every"], min(MIN_REFINE_EVERY, strategy.refine_every))
        if "reset_every" in changes:  # opacities need time to recover between resets, and refinements in between
            changes["reset_every"] = max(changes["reset_every"], MIN_RESET_EVERY, 2 * every)
        changes["refine_every"] = every
    return replace(strategy, **changes)
