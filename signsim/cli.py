"""Command line: ``signsim run | figure | stages`` (also ``python -m signsim ...``).

Bad arguments print one line on stderr and exit with status 2, never a traceback. Nothing a
user saved is overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line and exit code 2
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Progress:
    """A one-line progress bar on stderr; silent when stderr is not a terminal or --quiet."""

    def __init__(self, quiet: bool):
        self.on = not quiet and sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, done: float, total: float, label: str = "") -> None:
        if not self.on:
            return
        frac = 0.0 if total <= 0 else min(done / total, 1.0)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r[{bar:30s}] {100 * frac:5.1f}% {time.perf_counter() - self.t0:6.1f}s "
                         f"{label[:40]:40s}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\n")


def _parse_set(items: list[str]) -> dict:
    """``--set key=value``: values are read as JSON where they parse (numbers), else strings."""
    from .config import Config

    known = [f.name for f in fields(Config)]
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in known:
            raise ValueError(f"--set: unknown field {key!r}; known fields: {', '.join(known)}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _result_path(path: Path) -> Path:
    """A saved run: the .npz itself, or a directory written by ``signsim run``."""
    candidate = path / "result.npz" if path.is_dir() else path
    if not candidate.is_file():
        raise FileNotFoundError(f"no saved run at {path} (expected a .npz file or a directory "
                                "written by 'signsim run')")
    return candidate


def _require_empty(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"--out {out} is not empty; pass --force to write into it")


def _cmd_run(args) -> int:
    import signsim

    config = signsim.preset(args.preset, **_parse_set(args.set))
    _require_empty(args.out, args.force)
    bar = _Progress(args.quiet)
    try:
        result = signsim.run(config, progress=lambda t, n: bar(t, n, f"run {args.preset}"))
    finally:
        bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    result.save(args.out / "result.npz", overwrite=args.force)
    (args.out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    report = signsim.stages.detect(result)
    summary = {k: float(result.history[k][-1]) for k in
               ("train_loss", "train_error", "test_loss", "test_error")}
    summary["stages"] = report.as_dict()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        print(json.dumps(summary))
    return 0


def _cmd_figure(args) -> int:
    from . import figures
    from .result import load

    stem = args.name.replace("-", "_")
    taken = [str(p) for p in (args.out / f"{stem}.png", args.out / f"{stem}.pdf") if p.exists()]
    if taken and not args.force:  # refuse before spending minutes on the runs
        raise FileExistsError(f"{', '.join(taken)} exist(s); pass --force to replace")
    bar = _Progress(args.quiet)
    try:
        if args.runs:
            results = [load(_result_path(p)) for p in args.runs]
        else:
            results = figures.runs_for(args.name, seeds=tuple(range(args.seeds)), progress=bar)
    finally:
        bar.close()
    import matplotlib

    matplotlib.use("Agg")
    fig = figures.build(args.name, results)
    paths = figures.save_figure(fig, args.out, stem, overwrite=args.force)
    if not args.quiet:
        print("\n".join(str(p) for p in paths))
    return 0


def _cmd_stages(args) -> int:
    import signsim

    result = signsim.load(_result_path(args.path))
    reports = signsim.stages.detect(result, dominance=args.dominance,
                                    s21_threshold=args.s21_threshold)
    c = result.config
    scales = signsim.theory.time_scales(c)
    print(f"{c.optimizer}, lr={c.lr:g}, sigma_0={c.sigma_0:g}, steps={c.steps}; predicted "
          + ", ".join(f"{k} ~ {v:.3g}" for k, v in scales.items()))
    for k, rep in enumerate(reports if isinstance(reports, list) else [reports]):
        if isinstance(reports, list):
            print(f"replica {k} (seed {result.seeds[k]})")
        print(rep.table())
    return 0


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="signsim", description="Simulate a two-layer transformer trained by "
                "SignGD, Adam or GD (arXiv 2410.04870) and look at its stages.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run one configuration and save it into a directory",
                       description="Run a preset with overrides; write result.npz, "
                       "config.json and summary.json (final losses, stage boundaries) into --out.")
    r.add_argument("--preset", default="fig1", choices=["fig1", "fig2", "data_quality"],
                   help="starting configuration (default fig1)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Config field, e.g. --set lr=2e-4 --set optimizer=adam")
    r.add_argument("--out", required=True, type=Path, help="output directory")
    r.add_argument("--force", action="store_true", help="write into a non-empty --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")

    f = sub.add_parser("figure", help="reproduce a figure (PNG and PDF)",
                       description="Reproduce fig1 (the stages), fig2 (SignGD vs Adam) or "
                       "data-quality (test loss against SNR) from scratch, or from saved runs.")
    f.add_argument("name", choices=["fig1", "fig2", "data-quality"])
    f.add_argument("--out", required=True, type=Path, help="output directory")
    f.add_argument("--from", dest="runs", action="append", type=Path, metavar="RUN",
                   help="use a saved run (directory or .npz) instead of running; repeat for "
                   "fig2 (one SignGD, one Adam) and data-quality (one per optimizer and SNR)")
    f.add_argument("--seeds", type=int, default=5, help="seeds per point of data-quality (default 5)")
    f.add_argument("--force", action="store_true", help="replace existing figure files")
    f.add_argument("--quiet", action="store_true", help="no progress bar, no file list")

    s = sub.add_parser("stages", help="print the stage table of a saved run",
                       description="Detect the stage boundaries T1-T4 of a saved run.")
    s.add_argument("path", type=Path, help="a directory written by 'signsim run' or a .npz")
    s.add_argument("--s21-threshold", type=float, default=0.01, help="T4 threshold on s21")
    s.add_argument("--dominance", type=float, default=1.0, help="T1 dominance factor")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if getattr(args, "seeds", 1) < 1:
        print("signsim figure: error: --seeds must be >= 1", file=sys.stderr)
        return 2
    try:
        return {"run": _cmd_run, "figure": _cmd_figure, "stages": _cmd_stages}[args.command](args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, OSError) as exc:
        print(f"signsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
