"""The `gspruner` command: typed dataclass configs (gspruner/config.py) turned into subcommands by tyro; what
each subcommand then does lives in commands.py (and export/, viewer/, capture/, quantize.py, compact.py)."""

from __future__ import annotations

import os
import sys

from .errors import InputError


def config_type(name: str) -> type:
    """The config tyro parses a subcommand's options into. Only configs load here, no torch: `--help` builds this
    and nothing else."""
    if name == "process":
        from .capture.command import ProcessConfig

        return ProcessConfig
    from . import config

    if name == "train":
        return config.train_cli_type()  # the registered methods, at parse time
    if name == "prune":
        return config.prune_cli_type()
    return {"eval": config.EvalConfig, "export": config.ExportConfig, "view": config.ViewConfig,
            "distill-sh": config.DistillConfig, "quantize-sh": config.QuantizeConfig, "compact": config.CompactConfig,
            "report": config.ReportConfig}[name]


def run_function(name: str):
    """What a subcommand does with its parsed config; its module (and torch) is imported only now."""
    if name == "export":
        from .export.command import run_export

        return run_export
    if name == "view":
        from .viewer.server import run_view

        return run_view
    if name == "process":
        from .capture.command import run_process

        return run_process
    if name == "quantize-sh":
        from .quantize import run_quantize

        return run_quantize
    if name == "compact":
        from .compact import run_compact

        return run_compact
    from . import commands

    return {"train": commands.run_train, "prune": commands.run_prune, "eval": commands.run_eval,
            "distill-sh": commands.run_distill, "report": commands.run_report}[name]


# the subcommand fields whose method was an option's value before it became a subcommand (`--strategy fastgs`)
OLD_METHOD_OPTIONS = {"train": ("strategy", "prune"), "prune": ("score",)}


# options that moved under a method's subcommand: old flag -> (the subcommand, the flag now)
MOVED_OPTIONS = {"train": {"--prune-ratio": ("prune:NAME", "--prune.ratio"),
                           "--prune-threshold": ("prune:NAME", "--prune.threshold"),
                           "--prune-at": ("prune:NAME", "--prune.at"),
                           "--prune-opa": ("strategy:default", "--strategy.prune-opa"),
                           "--lp-score": ("prune:lp3dgs", "--prune.score")}}


def method_names(field: str) -> list[str]:
    """The registered methods `FIELD:NAME` takes: strategies, pruners, or (score) the post-hoc pruners."""
    from .pruning import PRUNERS
    from .strategies import STRATEGIES

    if field == "strategy":
        return list(STRATEGIES)
    return [name for name, config in PRUNERS.items() if field == "prune" or config.post_hoc]


def old_method_options(name: str, args: list[str]) -> str | None:
    """The one-line error for a method chosen the old way (`train --strategy fastgs --prune=lp3dgs`, `prune --score
    radsplat`), naming the subcommand to write instead (`strategy:fastgs`), or a method's option given the old way
    (`--prune-ratio 0.5`: MOVED_OPTIONS); None when `args` holds none."""
    fixes = []
    for i, arg in enumerate(args):
        for field in OLD_METHOD_OPTIONS.get(name, ()):
            if arg == f"--{field}":
                value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None
                old = arg if value is None else f"{arg} {value}"
            elif arg.startswith(f"--{field}="):
                value = arg.partition("=")[2]
                old = arg
            else:
                continue
            names = method_names(field)
            new = f"'{field}:{value}'" if value in names else f"'{field}:NAME' (NAME: {', '.join(names)})"
            fixes.append(f"'{old}' is the old spelling, use {new} instead")
        flag = arg.partition("=")[0]
        if flag in MOVED_OPTIONS.get(name, {}):
            command, now = MOVED_OPTIONS[name][flag]
            fixes.append(f"'{flag}' is the old spelling, use '{now}' after '{command}' instead")
    return "; ".join(fixes) or None


# name -> its config's docstring (`gspruner --help` lists them without importing torch; tests/test_cli.py keeps them equal)
COMMANDS = {
    "process": "Turn your own photos or a video into a scene `train` reads (COLMAP / Mip-NeRF 360 layout): frames, SIFT features, matching and mapping with pycolmap on the CPU, undistortion, images_2/4/8, process.json.",
    "train": "Train a 3D Gaussian Splatting scene (COLMAP / NeRF-synthetic / instant-ngp), a 4D one (D-NeRF, Neural 3D Video), or the built-in demo. Under `torchrun --nproc_per_node N -m gspruner.cli train ...` the Gaussians are sharded over N ranks (docs/distributed.md).",
    "prune": "Prune a trained checkpoint by an importance score, fine-tune without densification, and evaluate.",
    "export": "Export a checkpoint (or convert a scene file) to PLY, SOG, SPZ, glTF (.glb), compressed PLY or .splat, and print a size table (bytes per splat, ratio to the INRIA PLY).",
    "view": "Serve a trained scene in the browser (viser + nerfview): orbit the camera, switch RGB / depth / alpha, background and SH degree; a 4D checkpoint (dynamic scene) gets a time slider.",
    "eval": "Evaluate a checkpoint on a scene's test split and print the metrics as JSON.",
    "distill-sh": "SH distillation (LightGaussian): fine-tune a lower-SH-degree copy of a checkpoint against the full model's renders from training and pseudo views.",
    "quantize-sh": "SOG-ready SH palette: replace each Gaussian's higher SH bands by its entry of a k-means palette, fine-tune everything else with the palette fixed (quantization-aware), write the .sog.",
    "compact": "The compact pipeline in one command: prune in rounds, SH palette with a quantization-aware fine-tune, write a SOG (SuperSplat / PlayCanvas open it); prints size, ratio to the INRIA PLY and PSNR per stage.",
    "report": "Write report.md with tables and PNG plots for a training run, a benchmark scene, or a benchmark root.",
}
DESCRIPTION = "gspruner: train, prune, evaluate and export 3D Gaussian Splatting scenes (gsplat on CUDA, our rasterizer on CPU)."


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [f"usage: gspruner {{{','.join(COMMANDS)}}} [OPTIONS]", "", DESCRIPTION, "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", "`gspruner COMMAND --help` explains every option of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        old = old_method_options(name, rest)
        if old is not None:
            raise InputError(old)
        cfg = parse(config_type(name), rest, prog=f"gspruner {name}")
        run_function(name)(cfg)
    except InputError as exc:
        message = str(exc)
        if name == "prune":  # the method's options are --score.* here, --prune.* under `train`
            message = message.replace("--prune.", "--score.")
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def parse(cls: type, args: list[str], prog: str):
    """tyro's parse of `args` into `cls`; parent options may follow a method subcommand (`prune:lp3dgs
    --max-steps 10`). A usage error (unknown option or subcommand, bad value) becomes one InputError line
    instead of tyro's box; --help prints and exits 0 as usual."""
    import contextlib
    import io

    import tyro

    box = io.StringIO()
    try:
        with contextlib.redirect_stderr(box):
            return tyro.cli(cls, args=args, prog=prog, config=(tyro.conf.CascadeSubcommandArgs,))
    except SystemExit as exc:
        if not exc.code:
            raise
        raise InputError(f"{box_text(box.getvalue())} (see `{prog} --help`)") from None


BOX_CHARS = "│╭╮╰╯─ "


def box_text(text: str) -> str:
    """The message of tyro's error box, joined across its wrapped lines: the lines under the title (drawn with
    box characters on a terminal, as a title over a rule of dashes elsewhere) up to the first blank one; else
    the last non-empty line."""
    rows = [line.strip().strip("│").strip() for line in text.splitlines()]
    for i, row in enumerate(rows):
        boxed, ruled = row.startswith("╭─"), i > 0 and bool(row) and set(row) <= set("-─")
        if boxed or ruled:
            body = []
            for inner in rows[i + 1:]:
                if not inner or set(inner) <= set(BOX_CHARS + "-"):
                    break
                body.append(inner)
            return " ".join(body) if body else (row.strip(BOX_CHARS) if boxed else rows[i - 1])
    meaningful = [row for row in rows if row.strip(BOX_CHARS)]
    return meaningful[-1] if meaningful else "invalid arguments"


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """Console-script entry point."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # `gspruner ... --help | head`: the reader went away, nothing went wrong here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        sys.exit(0)
