import math

import pytest
import torch
from gsplat.strategy import DefaultStrategy, MCMCStrategy

from gspruner.strategies import make_strategy, scale_schedule
from gspruner.strategies.cpu_ops import relocation_torch


def test_relocation_matches_mcmc_eq9():
    """Our CPU relocation against a direct evaluation of Kheradmand et al. 2024, Eq. 9."""
    n_max = 51
    binoms = torch.zeros(n_max, n_max)
    for n in range(n_max):
        for k in range(n + 1):
            binoms[n, k] = math.comb(n, k)
    g = torch.Generator().manual_seed(0)
    opac = torch.rand(64, generator=g) * 0.9 + 0.05
    scales = torch.rand(64, 3, generator=g)
    ratios = torch.randint(1, 8, (64,), generator=g)
    new_o, new_s = relocation_torch(opac, scales, ratios.float(), binoms)
    for j in range(64):
        n, o = int(ratios[j]), float(opac[j])
        o_new = 1 - (1 - o) ** (1 / n)
        denom = sum(math.comb(i - 1, k) * (-1) ** k / math.sqrt(k + 1) * o_new ** (k + 1)
                    for i in range(1, n + 1) for k in range(i))
        assert float(new_o[j]) == pytest.approx(o_new, rel=1e-5)
        torch.testing.assert_close(new_s[j], scales[j] * o / denom, rtol=1e-4, atol=1e-6)
    # one copy changes nothing
    o1, s1 = relocation_torch(opac, scales, torch.ones(64), binoms)
    torch.testing.assert_close(o1, opac)
    torch.testing.assert_close(s1, scales, rtol=1e-5, atol=1e-6)


def test_schedules_scale_with_max_steps():
    full = make_strategy("default", 30_000)
    assert (full.refine_start_iter, full.refine_stop_iter, full.reset_every, full.refine_every) == (500, 15_000, 3000, 100)
    short = make_strategy("default", 3000)
    assert short.refine_stop_iter == 1500 and short.refine_start_iter == 50
    # refine_every keeps a floor of 25 steps and resets stay 30 refinements apart
    assert short.refine_every == 25 and short.reset_every == 750
    mcmc = make_strategy("mcmc", 7000)
    assert isinstance(mcmc, MCMCStrategy) and mcmc.refine_stop_iter == round(25_000 * 7 / 30)
    assert scale_schedule(DefaultStrategy(), 60_000).refine_stop_iter == 30_000
    assert type(make_strategy("none", 100)).__name__ == "Strategy"
