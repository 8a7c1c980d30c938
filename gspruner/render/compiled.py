"""The compiled CPU backend: csrc/cpu_raster.cpp (C++/OpenMP) behind autograd wrappers.

Same algorithm, rules and outputs as the PyTorch rasterizer (`torch_raster`, the reference): EWA
projection, per-tile depth-sorted lists, per-pixel front-to-back compositing that stops at gsplat's
exclusive T <= 1e-4, and gsplat's analytic back-to-front backward. Where the PyTorch path spends most
of its time building every candidate (Gaussian, pixel) pair, this one walks each pixel's list and stops
with the pixel: no pair list exists unless asked for (`info["pairs"]`, built on first access).

Choice of backend (`backend()`): the environment variable GSPRUNER_CPU_BACKEND = compiled (default) |
torch. The extension is built on first use with `torch.utils.cpp_extension.load` and cached (like
gsplat's CUDA kernels and our cuda/ statistics kernel); without a working C++ compiler the PyTorch
path is used, with one warning. Float32 only: other dtypes, tile_size > 16 and gradients to the cameras
(viewmats / Ks) go to the PyTorch path; SH degree 4 uses the PyTorch SH and the compiled rest.

Data flow of one render (each stage an autograd Function over one C++ entry point):
    _Project (project_fwd/bwd) -> _SphericalHarmonics[Split] (sh_fwd/bwd[_split]) -> bin_tiles (no grad)
    -> _Rasterize (raster_fwd/bwd); collect_pairs on demand. `contribution_stats` (the pruners' per-Gaussian
    statistics, FastGS's masked counts) walks the same lists without building pairs.

Threads: `threads()`, the OpenMP team of each parallel region, is GSPRUNER_CPU_THREADS if set, else
torch's thread count. There are a handful of regions per render (not thousands of small ops as in the
PyTorch path), so a busy machine costs at most a few scheduler ticks per render.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..errors import InputError
from . import torch_raster
from .torch_raster import Pairs, Projection

SOURCE = Path(__file__).resolve().parent / "csrc" / "cpu_raster.cpp"
BACKEND_ENV = "GSPRUNER_CPU_BACKEND"
THREADS_ENV = "GSPRUNER_CPU_THREADS"
SIMD_ENV = "GSPRUNER_CPU_SIMD"
SIMD_LEVELS = ("native", "avx2", "baseline")
BACKENDS = ("compiled", "torch")
MAX_SH_DEGREE = 3  # the compiled SH kernel's degrees 0..3; 4 goes through the PyTorch SH
MAX_TILE_SIZE = 16  # a tile row is one 16-lane SIMD row; larger tiles go to the PyTorch path

_ext = None
_tried = False
_lock = threading.Lock()


def requested_backend() -> str:
    """GSPRUNER_CPU_BACKEND, checked where it is read: 'compiled' (default) or 'torch' (else InputError:
    the CLI's one `error:` line, exit 2)."""
    value = os.environ.get(BACKEND_ENV, "compiled").strip().lower() or "compiled"
    if value not in BACKENDS:
        raise InputError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def extension():
    """The built extension module, or None when it cannot be built (warned once)."""
    global _ext, _tried
    with _lock:
        if not _tried:
            simd = _simd_flags()  # InputError for a bad GSPRUNER_CPU_SIMD, before the build is tried
            _tried = True
            try:
                from torch.utils.cpp_extension import _get_build_directory, load

                name = extension_name(simd)
                if not list(Path(_get_build_directory(name, False)).glob("*.so")):
                    print("gspruner: building the compiled CPU rasterizer (first use only, about 30 s)", file=sys.stderr,
                          flush=True)
                _ext = load(name=name,
                            sources=[str(SOURCE)], extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math", *simd],
                            extra_ldflags=["-fopenmp"], verbose=False)
            except Exception as exc:  # no compiler, no sources (wheel without them), broken toolchain
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                warnings.warn(f"gspruner: compiled CPU rasterizer not built ({first}); using the PyTorch "
                              f"rasterizer (set {BACKEND_ENV}=torch to silence this)", stacklevel=3)
    return _ext


def extension_name(simd: list) -> str:
    """gspruner_cpu_raster_<source hash>[_<isa>...]: a build per source and SIMD level, so checkouts of different
    versions sharing torch's extension cache (TORCH_EXTENSIONS_DIR) never load each other's build."""
    digest = hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:10]
    return f"gspruner_cpu_raster_{digest}" + "".join(f.replace("-m", "_") for f in simd)


def _simd_flags() -> list:
    """The SIMD flags of the build, from GSPRUNER_CPU_SIMD (checked where it is read):
    native (default): -mavx2 where this x86-64 CPU has AVX2 and -mavx512f where it has AVX-512 (a 16-pixel tile
    row is then one vector instead of two 8-lane ones); avx2: at most -mavx2; baseline: none. The flags are part
    of the extension's name, so a cache shared by different CPUs or levels never mixes builds."""
    level = simd_level()
    if level == "baseline":
        return []
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [f"-m{isa}" for isa in ("avx2", "avx512f")[: 2 if level == "native" else 1] if isa in flags]


def simd_level() -> str:
    """GSPRUNER_CPU_SIMD: native (default) | avx2 | baseline, else InputError (see `_simd_flags`)."""
    level = os.environ.get(SIMD_ENV, "native").strip().lower() or "native"
    if level not in SIMD_LEVELS:
        raise InputError(f"{SIMD_ENV} must be one of {', '.join(SIMD_LEVELS)}, got {level!r}")
    return level


def backend() -> str:
    """The CPU backend that renders now: 'compiled' when requested and built, else 'torch'."""
    if requested_backend() == "torch":
        return "torch"
    threads()  # GSPRUNER_CPU_THREADS checked up front too
    return "compiled" if extension() is not None else "torch"


def threads() -> int:
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise InputError(f"{THREADS_ENV} must be a positive integer, got {value!r}") from None
        if n < 1:
            raise InputError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        return n
    return torch.get_num_threads()


def handles(*tensors: Optional[Tensor], tile_size: int = 16, cameras: Tuple[Tensor, ...] = ()) -> bool:
    """Whether the compiled path takes these inputs and is the chosen backend: float32 CPU tensors,
    tile_size <= 16, and no gradient asked for the `cameras` (viewmats, Ks)."""
    return all(t is None or (t.dtype == torch.float32 and t.device.type == "cpu") for t in tensors + cameras) \
        and 1 <= tile_size <= MAX_TILE_SIZE and not any(t.requires_grad for t in cameras) \
        and backend() == "compiled"


def _f32(t: Optional[Tensor]) -> Tensor:
    return torch.empty(0) if t is None else t.detach().contiguous()


def upper_triangle(covars: Tensor) -> Tensor:
    """[N, 6] (xx, xy, xz, yy, yz, zz) from [N, 6] or a symmetric [N, 3, 3] (off-diagonals averaged)."""
    if covars.shape[-1] == 6:
        return covars
    sym = 0.5 * (covars + covars.transpose(-1, -2))
    return torch.stack([sym[:, 0, 0], sym[:, 0, 1], sym[:, 0, 2], sym[:, 1, 1], sym[:, 1, 2], sym[:, 2, 2]], -1)


# --------------------------------------------------------------------------------------------
# Autograd wrappers
# --------------------------------------------------------------------------------------------


class _Project(torch.autograd.Function):
    """EWA projection: (means, quats, scales | covars6, opacities) -> radii, means2d, depths, conics, opacities."""

    @staticmethod
    def forward(ctx, means, quats, scales, covars6, opacities, viewmats, Ks, settings):
        width, height, near, far, clip, eps2d, aa = settings
        args = [_f32(t) for t in (means, quats, scales, covars6, opacities, viewmats, Ks)]
        radii, means2d, depths, conics, opac, comp = extension().project_fwd(
            *args, width, height, near, far, clip, eps2d, aa, threads())
        ctx.save_for_backward(*args)
        ctx.settings = settings
        ctx.mark_non_differentiable(radii, comp)
        return radii, means2d, depths, conics, opac, comp

    @staticmethod
    def backward(ctx, _r, v_means2d, v_depths, v_conics, v_opac, _c):
        width, height, near, far, _clip, eps2d, aa = ctx.settings
        means = ctx.saved_tensors[0]
        C, N = ctx.saved_tensors[5].shape[0], means.shape[0]

        def grad(v, shape):  # an output the loss did not use: zeros
            return means.new_zeros(shape) if v is None else v.contiguous()

        v_means, v_quats, v_scales, v_cov, v_opacities = extension().project_bwd(
            *ctx.saved_tensors, width, height, near, far, eps2d, aa,
            grad(v_means2d, (C, N, 2)), grad(v_depths, (C, N)), grad(v_conics, (C, N, 3)), grad(v_opac, (C, N)),
            threads())
        need = ctx.needs_input_grad
        return (v_means if need[0] else None, v_quats if need[1] else None, v_scales if need[2] else None,
                v_cov if need[3] else None, v_opacities if need[4] else None, None, None, None)


class _SphericalHarmonics(torch.autograd.Function):
    """colors [C, N, 3] = clamp_min(SH(normalize(mean - campos)) + 0.5, 0), degree <= 3, for entries with
    radii > 0 (0 for culled ones, as gsplat's SH with `masks`: no pixel shows them)."""

    @staticmethod
    def forward(ctx, means, coeffs, campos, radii, degree):
        means, coeffs, campos = means.detach().contiguous(), coeffs.detach().contiguous(), campos.detach().contiguous()
        radii = radii.contiguous()
        ctx.save_for_backward(means, coeffs, campos, radii)
        ctx.degree = degree
        return extension().sh_fwd(degree, means, campos, coeffs, radii, threads())

    @staticmethod
    def backward(ctx, v_colors):
        means, coeffs, campos, radii = ctx.saved_tensors
        v_means, v_coeffs = extension().sh_bwd(ctx.degree, means, campos, coeffs, radii, v_colors.contiguous(),
                                               threads())
        return (v_means if ctx.needs_input_grad[0] else None, v_coeffs if ctx.needs_input_grad[1] else None,
                None, None, None)


class _SphericalHarmonicsSplit(torch.autograd.Function):
    """`_SphericalHarmonics` on the model's two SH parameters (sh0 [N, 1, 3], shN [N, K-1, 3]) read in place;
    their gradients come back in their own shapes (zeros past the degree)."""

    @staticmethod
    def forward(ctx, means, sh0, shN, campos, radii, degree):
        means, campos, radii = means.detach().contiguous(), campos.detach().contiguous(), radii.contiguous()
        sh0, shN = _rows(sh0.detach()), _rows(shN.detach())
        ctx.save_for_backward(means, sh0, shN, campos, radii)
        ctx.degree = degree
        return extension().sh_fwd_split(degree, means, campos, sh0, shN, radii, threads())

    @staticmethod
    def backward(ctx, v_colors):
        means, sh0, shN, campos, radii = ctx.saved_tensors
        v_means, v_sh0, v_shN = extension().sh_bwd_split(ctx.degree, means, campos, sh0, shN, radii,
                                                          v_colors.contiguous(), threads())
        need = ctx.needs_input_grad
        return (v_means if need[0] else None, v_sh0 if need[1] else None, v_shN if need[2] else None,
                None, None, None)


def _rows(t: Tensor) -> Tensor:
    """[N, B, 3] with each row's B x 3 values contiguous (a parameter as it is; a copy otherwise)."""
    return t if t.numel() == 0 or (t.stride(-1) == 1 and t.stride(-2) == 3) else t.contiguous()


class BackwardStats:
    """Per-Gaussian statistics a strategy asks of the training render's backward pass, which walks every
    composited pair anyway (`contribution_stats`' values without its pass). Before `loss.backward()` set
    `hit_weights` [C, H, W] and/or `want_weight_max`; after it read
      hits [C, N]:       per Gaussian, the sum of the weights of the pixels it is composited into (hit_count);
      weight_max [C, N]: the largest alpha T it has at any pixel (weight_max)."""

    def __init__(self):
        self.hit_weights: Optional[Tensor] = None
        self.want_weight_max = False
        self.hits: Optional[Tensor] = None
        self.weight_max: Optional[Tensor] = None


class _Rasterize(torch.autograd.Function):
    """Per-pixel front-to-back compositing over the binned tiles (3DGS Eq. 3) and its analytic backward."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, feats, backgrounds, tiles, settings, absgrad, stats_request):
        width, height, tile_size, compact_box = settings
        args = [_f32(t) for t in (means2d, conics, opacities, feats, backgrounds)]
        colors, alphas, t_final, ends = extension().raster_fwd(
            *args, tiles.offsets, tiles.ids, width, height, tile_size, compact_box, threads())
        ctx.save_for_backward(means2d, *args[1:], *tiles, t_final, ends)
        ctx.settings, ctx.absgrad, ctx.has_bg = settings, absgrad, backgrounds is not None
        ctx.stats_request = stats_request
        return colors, alphas

    @staticmethod
    def backward(ctx, v_colors, v_alphas):
        means2d, conics, opac, feats, bg, offsets, ids, first, rank, t_final, ends = ctx.saved_tensors
        width, height, tile_size, compact_box = ctx.settings
        if v_colors is None:  # an output the loss did not use
            v_colors = feats.new_zeros(t_final.shape + feats.shape[-1:])
        if v_alphas is None:
            v_alphas = t_final.new_zeros(t_final.shape + (1,))
        request = ctx.stats_request
        weights = None if request is None or request.hit_weights is None else request.hit_weights.float()
        want_max = request is not None and request.want_weight_max
        v_means2d, v_conics, v_opac, v_feats, v_bg, absg, hits, w_max = extension().raster_bwd(
            means2d.detach().contiguous(), conics, opac, feats, bg, offsets, ids, first, rank, t_final, ends,
            v_colors.contiguous(), v_alphas.contiguous(), _f32(weights), want_max,
            width, height, tile_size, compact_box, ctx.absgrad, threads())
        if ctx.absgrad:  # AbsGS: the strategy reads it from info["means2d"].absgrad
            means2d.absgrad = absg
        if weights is not None:
            request.hits = hits
        if want_max:
            request.weight_max = w_max
        need = ctx.needs_input_grad
        return (v_means2d, v_conics, v_opac, v_feats if need[3] else None,
                v_bg if ctx.has_bg and need[4] else None, None, None, None, None)


# --------------------------------------------------------------------------------------------
# The pieces the package uses
# --------------------------------------------------------------------------------------------


def project(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10,
            radius_clip=0.0, eps2d=0.3, covars=None, antialiased=False) -> Projection:
    """`torch_raster.project` in C++ (same outputs; gradients to means, quats, scales / covars, opacities)."""
    cov6 = upper_triangle(covars) if covars is not None else None
    settings = (int(width), int(height), float(near_plane), float(far_plane), float(radius_clip), float(eps2d),
                bool(antialiased))
    radii, means2d, depths, conics, opac, comp = _Project.apply(
        means, None if cov6 is not None else quats, None if cov6 is not None else scales, cov6, opacities,
        viewmats, Ks, settings)
    return Projection(radii, means2d, depths, conics, opac, comp if antialiased else None)


class Tiles(NamedTuple):
    """Per-tile Gaussian lists, front to back (`bin_tiles`), and where each entry's gradient sums go."""
    offsets: Tensor  # [C tiles + 1] int32: tile t's entries are ids[offsets[t] : offsets[t + 1]]
    ids: Tensor  # [I] int32 Gaussian ids
    first: Tensor  # [C N + 1] int32: (camera, Gaussian) i's entries in Gaussian order are first[i] : first[i + 1]
    rank: Tensor  # [I] int32: entry q's place in that Gaussian order


def bin_tiles(proj: Projection, width: int, height: int, tile_size: int) -> Tiles:
    """Per-tile Gaussian lists, front to back, with gsplat's tile rule and depth order."""
    return Tiles(*extension().bin_tiles(proj.means2d.detach().contiguous(), proj.radii.contiguous(),
                                        proj.depths.detach().contiguous(), width, height, tile_size, threads()))


@torch.no_grad()
def contributing_pairs(means2d, conics, opacities, depths, radii, width, height, tile_size=16,
                       compact_box=1.0) -> Pairs:
    """`torch_raster.contributing_pairs` in C++: every composited pair in (camera, pixel, depth) order."""
    torch_raster.check_compact_box(compact_box)
    proj = Projection(radii, means2d, depths, conics, opacities, None)
    tiles = bin_tiles(proj, width, height, tile_size)
    return _pairs(means2d, conics, opacities, tiles.offsets, tiles.ids, width, height, tile_size, compact_box)


def _pairs(means2d, conics, opacities, offsets, ids, width, height, tile_size, compact_box) -> Pairs:
    g, pix, cam, alpha, T, t_final, starts = extension().collect_pairs(
        means2d.detach().contiguous(), conics.detach().contiguous(), opacities.detach().contiguous(),
        offsets, ids, width, height, tile_size, compact_box, threads())
    return Pairs(g, cam, pix, alpha, T, alpha * T, t_final, starts, width, height)


HIT_COUNT = 2  # contribution_stats' row of the summed pixel weights


def _projected(proj: Projection) -> tuple[Tensor, Tensor, Tensor]:
    """(means2d, conics, opacities) of a projection as the C++ passes over its tile lists take them."""
    return proj.means2d.detach().contiguous(), proj.conics.detach().contiguous(), proj.opacities.detach().contiguous()


@torch.no_grad()
def contribution_stats(proj: Projection, width: int, height: int, pixel_weights: Optional[Tensor] = None,
                       tile_size: int = 16, compact_box: float = 1.0, tiles: Optional[Tiles] = None) -> Tensor:
    """[5, C, N]: render/stats.py's per-Gaussian statistics (weight_sum, weight_max, hit_count, trans_sum,
    max_count) of the projected Gaussians in each of their C cameras, in C++ without building the pairs;
    pixel_weights [C, H, W] or None; `tiles`: this projection's `bin_tiles`, when a render already made them."""
    torch_raster.check_compact_box(compact_box)
    tiles = bin_tiles(proj, width, height, tile_size) if tiles is None else tiles
    weights = torch.zeros(0) if pixel_weights is None else pixel_weights.detach().float().contiguous()
    return extension().contribution_stats(*_projected(proj), tiles.offsets, tiles.ids, tiles.first, tiles.rank, weights,
                                          width, height, tile_size, compact_box, threads())


@torch.no_grad()
def removal_loss(proj: Projection, colors: Tensor, images: Tensor, width: int, height: int,
                 backgrounds: Optional[Tensor] = None, tile_size: int = 16, compact_box: float = 1.0) -> Tensor:
    """[C, N] float64: per camera, each Gaussian's L1 loss change when it alone is removed (pruning/removal.py's
    `removal_delta` summed per Gaussian), in C++ without building the pairs. colors [C, N, 3] at each view,
    images [C, H, W, >=3] (the first 3 channels), backgrounds [C, 3] or None (black)."""
    torch_raster.check_compact_box(compact_box)
    tiles = bin_tiles(proj, width, height, tile_size)
    bg = torch.zeros(0) if backgrounds is None else backgrounds.detach().float().contiguous()
    return extension().removal_loss(
        *_projected(proj), colors.detach().float().contiguous(), bg, images[..., :3].detach().float().contiguous(),
        tiles.offsets, tiles.ids, tiles.first, tiles.rank, width, height, tile_size, compact_box, threads())


@torch.no_grad()
def fisher_patches(proj: Projection, colors: Tensor, jac: Tensor, jac_colour: Tensor, width: int, height: int,
                   backgrounds: Optional[Tensor] = None, patch: int = 4, tile_size: int = 16,
                   compact_box: float = 1.0) -> Tensor:
    """[C, N, 6, 6] float64: PUP-3DGS's Fisher information of each Gaussian in each camera over its mean and
    log-scale (pruning/sensitivity.py's pairs path, fused in C++ without building the pairs). colors [C, N, 3],
    jac [C, N, 5, 6] = ∂(mean2d, conic)/∂(μ, log s), jac_colour [C, N, 3, 3] = ∂colour/∂μ, backgrounds [C, 3]."""
    torch_raster.check_compact_box(compact_box)
    tiles = bin_tiles(proj, width, height, tile_size)
    bg = torch.zeros(0) if backgrounds is None else backgrounds.detach().float().contiguous()
    return extension().fisher_patches(
        *_projected(proj), colors.detach().float().contiguous(), bg, jac.detach().float().contiguous(),
        jac_colour.detach().float().contiguous(), tiles.offsets, tiles.ids, tiles.first, tiles.rank, width, height,
        tile_size, patch, compact_box, threads())


class RenderInfo(dict):
    """gsplat's `info` dict; the keys in `lazy` ("pairs": the composited pairs) are computed on first access and
    kept: most steps do not read them.

    `weighted_hits(weights [C, H, W])` -> [C, N]: per Gaussian, the sum of the weights of the pixels it is
    composited into (`contribution_stats`' hit_count over the render's own tiles: no pairs are built, unweighted
    pixel rows are skipped). `backward_stats`: a `BackwardStats` the backward pass of a render with gradients
    fills on request (the same sums, and weight_max), None without gradients.
    """

    def __init__(self, *args, lazy=None, hits_fn=None, backward_stats=None, **kw):
        super().__init__(*args, **kw)
        self._lazy = dict(lazy or {})
        self.weighted_hits = hits_fn
        self.backward_stats = backward_stats

    def __missing__(self, key):
        if key in self._lazy:
            self[key] = self._lazy.pop(key)()
            return self[key]
        raise KeyError(key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __contains__(self, key):
        return super().__contains__(key) or key in self._lazy


def rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=0.01,
              far_plane=1e10, radius_clip=0.0, eps2d=0.3, sh_degree=None, packed=False, tile_size=16,
              backgrounds=None, render_mode="RGB", absgrad=False, rasterize_mode="classic", covars=None,
              compact_box=1.0):
    """`torch_raster.rasterize` with the compiled stages (same arguments, outputs and info keys)."""
    torch_raster.check_inputs(means, quats, scales, opacities, viewmats, Ks, covars, render_mode, rasterize_mode)
    C, N = viewmats.shape[0], means.shape[0]
    split = isinstance(colors, (tuple, list))  # (sh0, shN): see gspruner.render.rasterize
    if split and (sh_degree is None or sh_degree > MAX_SH_DEGREE or render_mode in ("D", "ED")):
        colors, split = torch.cat(list(colors), dim=-2), False
    if split:
        sh0, shN = colors
        if sh0.shape != (N, 1, 3) or shN.dim() != 3 or shN.shape[0] != N or shN.shape[2] != 3 \
                or shN.shape[1] + 1 < (sh_degree + 1) ** 2:
            raise ValueError(f"(sh0, shN) must be [N, 1, 3] and [N, K-1, 3] with K >= (sh_degree + 1)^2, got "
                             f"{tuple(sh0.shape)} and {tuple(shN.shape)}")
    else:
        torch_raster.check_colors(colors, sh_degree, C, N)
    torch_raster.check_compact_box(compact_box)
    proj = project(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane,
                   radius_clip, eps2d, covars, antialiased=rasterize_mode == "antialiased")
    feats = view_features(means, colors, viewmats, proj.radii, sh_degree, depth_only=render_mode in ("D", "ED"))
    feats, backgrounds = torch_raster.with_depth_channel(render_mode, feats, proj.depths, backgrounds)
    stats_request = BackwardStats() if torch.is_grad_enabled() else None
    render_colors, render_alphas, tiles = composite_projected(proj, feats, backgrounds, width, height, tile_size,
                                                              absgrad, compact_box, stats_request)
    geometry = (proj.means2d, proj.conics, proj.opacities, tiles.offsets, tiles.ids, width, height, tile_size,
                compact_box)
    info = RenderInfo(torch_raster.render_info(proj, width, height, tile_size, with_tile_counts=False),
                      lazy={"pairs": lambda: _pairs(*geometry)},
                      hits_fn=lambda weights: contribution_stats(proj, width, height, weights, tile_size, compact_box,
                                                                 tiles)[HIT_COUNT],
                      backward_stats=stats_request)
    info["tiles_per_gauss"] = torch.diff(tiles.first).view(C, N)  # [C, N] int32: each box's tile count (bin_tiles)
    return torch_raster.expected_depth(render_mode, render_colors, render_alphas), render_alphas, info


def view_features(means, colors, viewmats, radii, sh_degree, depth_only: bool = False) -> Tensor:
    """Per-camera colours [C, N, D]: SH evaluated towards each camera (clamp_min(SH + 0.5, 0), only where
    radii > 0), or the colours as given. `colors` may be (sh0, shN)."""
    if sh_degree is not None and sh_degree <= MAX_SH_DEGREE and not depth_only:
        campos = torch.inverse(viewmats.detach())[:, :3, 3]  # [C, 3]
        if isinstance(colors, (tuple, list)):
            return _SphericalHarmonicsSplit.apply(means, *colors, campos, radii, sh_degree)
        return _SphericalHarmonics.apply(means, colors, campos, radii, sh_degree)
    return torch_raster.view_features(means, colors, viewmats, radii, sh_degree)


def composite_projected(proj: Projection, feats, backgrounds, width, height, tile_size=16, absgrad=False,
                        compact_box=1.0, stats_request: Optional[BackwardStats] = None):
    """Tile binning and front-to-back compositing of projected Gaussians: (colors [C, H, W, D], alphas
    [C, H, W, 1], tiles). The stage a sharded render runs on the camera's rank (render/distributed.py)."""
    tiles = bin_tiles(proj, width, height, tile_size)
    render_colors, render_alphas = _Rasterize.apply(
        proj.means2d, proj.conics, proj.opacities, feats, backgrounds, tiles,
        (int(width), int(height), int(tile_size), float(compact_box)), absgrad, stats_request)
    return render_colors, render_alphas, tiles
