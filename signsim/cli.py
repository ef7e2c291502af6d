"""Command line: ``signsim run | figure | stages | sweep | table`` (also ``python -m signsim
...``; ``sweep`` and ``table`` live in ``signsim.sweeps.command``).

Exit status: 0 done; 1 a run-time failure (one line ``signsim CMD: error: ...`` on stderr:
another process writing the same ``--out``, a file that is not a signsim result, out of
memory, a full disk, a missing matplotlib, ...); 2 a bad argument (one line, never a
traceback; an ``--out`` that is a file, not writable or not empty without ``--force`` is a
bad argument); 130 interrupted (Ctrl-C). A closed stdout (``signsim stages DIR | head -1``)
ends the command quietly (status 1, as Python's docs recommend).

``run`` and ``figure`` claim ``--out`` (``signsim.outdir``) before they simulate: it is
created, checked, and locked against a second writer; its files are written atomically and
nothing a user saved is overwritten without ``--force``. JSON output is strict: a NaN or an
infinity is written as ``null``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import fields
from pathlib import Path

__all__ = ["main"]

_INT64_MAX = 2**63 - 1
_MAX_SEEDS = 10_000


class _UsageError(Exception):
    """A bad argument: one line on stderr, exit status 2."""


class _Failure(Exception):
    """A run-time failure with a message of its own: one line, exit status 1."""


class _StdoutClosed(Exception):
    """stdout is a closed pipe (``| head``): stop quietly."""


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


# ------------------------------------------------------------------ output


def _jsonable(obj):
    """``obj`` with NumPy scalars made plain and non-finite floats made None."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _dumps(obj, **kwargs) -> str:
    """Strict JSON (no bare NaN or Infinity: non-finite floats become null)."""
    return json.dumps(_jsonable(obj), allow_nan=False, **kwargs)


def _emit(text: str) -> None:
    """A line on stdout; a closed pipe stops the command quietly."""
    try:
        print(text)
    except BrokenPipeError:
        raise _StdoutClosed from None
    _flush()


def _flush() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise _StdoutClosed from None


def _silence_stdout() -> None:
    """Point stdout at devnull so that the flush at exit does not fail again (Python docs,
    "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def _say(line: str) -> None:
    """One line on stderr, whatever its encoding."""
    line = " ".join(line.split())
    try:
        print(line, file=sys.stderr)
    except UnicodeEncodeError:
        print(line.encode("ascii", "backslashreplace").decode("ascii"), file=sys.stderr)
    except (OSError, ValueError):
        pass


def _describe(exc: BaseException) -> str:
    """An exception as the one line after ``error:``."""
    from . import outdir

    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return "out of memory" + (f" ({text})" if text else "")
    if isinstance(exc, (ValueError, TypeError, OSError, outdir.OutDirError, _Failure)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------ arguments


def _parse_set(items: list[str]) -> dict:
    """``--set key=value``: values are read as JSON where they parse (numbers), else strings.
    Numbers must be finite and ints fit in 64 bits."""
    from .config import Config

    known = [f.name for f in fields(Config)]
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise _UsageError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in known:
            raise _UsageError(f"--set: unknown field {key!r}; known fields: {', '.join(known)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        except ValueError:  # an int of more digits than Python converts (4300)
            raise _UsageError(f"--set {key}={_short(raw)}: the value must fit in 64 bits "
                              "(|value| <= 2**63-1)") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _UsageError(f"--set {key}={_short(raw)}: the value must be a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64_MAX:
            raise _UsageError(f"--set {key}={_short(raw)}: the value must fit in 64 bits "
                              "(|value| <= 2**63-1)")
        out[key] = value
    return out


def _short(text: str, k: int = 24) -> str:
    return text if len(text) <= k else f"{text[:k]}... ({len(text)} characters)"


def _config(args):
    from .config import preset

    overrides = _parse_set(args.set)
    try:
        return preset(args.preset or "fig1", **overrides)
    except (ValueError, TypeError) as exc:
        raise _UsageError(str(exc)) from None


def _result_path(path: Path) -> Path:
    """A saved run: the .npz itself, or a directory written by ``signsim run``."""
    candidate = path / "result.npz" if path.is_dir() else path
    if not candidate.is_file():
        raise _UsageError(f"no saved run at {path} (expected a .npz file or a directory "
                          "written by 'signsim run')")
    return candidate


def _load(path: Path):
    """A saved Result; any failure to read it is one clear line (exit 1)."""
    from .result import load

    try:
        return load(path)
    except MemoryError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())
        if str(path) in text:  # the message names the file already (SignsimFileError)
            raise _Failure(text) from None
        raise _Failure(f"{path} is not a readable signsim result "
                       f"({type(exc).__name__}: {text})") from None


def _load_sweep(folders: list):
    """The sweep kept in ``folders`` (its shards' folders, or one)."""
    from .sweeps import load

    try:
        return load(*folders)
    except ValueError as exc:
        raise _Failure(" ".join(str(exc).split())) from None


def _claim(out: Path, *, force: bool, names=None):
    """``outdir.claim`` with its refusals as bad arguments (exit 2); Busy is a run-time
    failure (exit 1)."""
    from . import outdir

    try:
        return outdir.claim(out, force=force, names=names)
    except outdir.NotEmpty as exc:
        if outdir.CHECKPOINT in exc.entries and "result.npz" not in exc.entries:
            raise _UsageError(f"{exc}; it holds the checkpoint of an unfinished run: "
                              f"continue it with 'signsim run --resume {out}'") from None
        raise _UsageError(str(exc)) from None
    except outdir.Unusable as exc:
        raise _UsageError(str(exc)) from None


def _require_matplotlib() -> None:
    try:
        import matplotlib
    except Exception as exc:  # ImportError, or a broken installation
        raise _Failure("figures need matplotlib, which cannot be imported "
                       f"({type(exc).__name__}: {exc}); install it with "
                       'python -m pip install "signsim[plot]"') from None
    matplotlib.use("Agg")


# ------------------------------------------------------------------ commands


def _write_run(out, result) -> dict:
    """result.npz, config.json and summary.json of one run, by the holder of ``out``."""
    import signsim

    import numpy as np

    report = signsim.stages.detect(result)  # a list of reports for a batch (a resumed one)
    summary = {k: np.asarray(result.history[k])[..., -1].tolist() for k in
               ("train_loss", "train_error", "test_loss", "test_error")}
    summary["stages"] = ([r.as_dict() for r in report] if isinstance(report, list)
                         else report.as_dict())
    config_text = _dumps(result.config.to_dict(), indent=2, sort_keys=True) + "\n"
    summary_text = _dumps(summary, indent=2) + "\n"
    out.write_with("result.npz", lambda tmp: result.save(tmp, overwrite=True))
    out.write_text("config.json", config_text)
    out.write_text("summary.json", summary_text)
    return summary


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was saved and how to go on."""


def _cmd_run(args) -> int:
    import signsim

    from . import outdir

    if args.resume is not None:
        return _cmd_resume(args)
    config = _config(args)
    # always a checkpoint on Ctrl-C; every K steps too with --checkpoint-every K
    checkpoint = args.out / outdir.CHECKPOINT
    label = f"run {args.preset or 'fig1'}"
    with _claim(args.out, force=args.force) as out:  # before any compute
        bar = _Progress(args.quiet)
        try:
            result = signsim.run(config, progress=lambda t, n: bar(t, n, label),
                                 checkpoint=checkpoint, checkpoint_every=args.checkpoint_every)
        except KeyboardInterrupt:
            if not checkpoint.is_file():
                raise _Interrupted("interrupted before the first step: nothing to resume")
            raise _Interrupted(f"interrupted; the run so far is in {checkpoint}: continue it "
                               f"with 'signsim run --resume {args.out}'") from None
        finally:
            bar.close()
        summary = _write_run(out, result)
        if args.checkpoint_every is None:  # written only for an interruption: done with
            checkpoint.unlink(missing_ok=True)
    if not args.quiet:
        _emit(_dumps(summary))
    return 0


# signsim run --resume DIR: checkpointing is signsim.run(..., checkpoint=, checkpoint_every=)
# and signsim.resume (signsim.checkpoint); the CLI claims DIR, resumes DIR/checkpoint.npz and
# writes the results exactly like a normal run.
def _cmd_resume(args) -> int:
    import signsim

    from . import outdir

    given = [name for name, on in (("--preset", args.preset is not None), ("--set", args.set),
                                   ("--checkpoint-every", args.checkpoint_every is not None))
             if on]
    if given:
        raise _UsageError(f"--resume continues the run saved in its checkpoint, with its own "
                          f"configuration; drop {', '.join(given)}")
    directory = args.resume
    checkpoint = directory / outdir.CHECKPOINT
    if not checkpoint.is_file():
        raise _UsageError(f"no checkpoint at {checkpoint}; 'signsim run --checkpoint-every K "
                          f"--out {directory}' writes one")
    with _claim(directory, force=args.force, names=outdir.RUN_FILES) as out:
        try:
            result = signsim.resume(checkpoint)
        except KeyboardInterrupt:
            raise _Interrupted(f"interrupted; the run so far is in {checkpoint}: continue it "
                               f"with 'signsim run --resume {directory}'") from None
        summary = _write_run(out, result)
        if signsim.checkpoint.every_of(checkpoint) is None:  # only for interruptions
            checkpoint.unlink(missing_ok=True)
    if not args.quiet:
        _emit(_dumps(summary))
    return 0


def _cmd_figure(args) -> int:
    from . import figures

    stem = args.name.replace("-", "_")
    runs = args.runs or []
    wanted = {"fig1": (1, "one run"), "fig2": (2, "two runs (SignGD, then Adam)"),
              "precision": (3, "three runs (arithmetic exact, float64 and float32)")}
    if runs and args.name in wanted and len(runs) != wanted[args.name][0]:
        raise _UsageError(f"{args.name} takes {wanted[args.name][1]} with --from; "
                          f"got {len(runs)}")
    folders = [p for p in runs if (p / "sweep.json").is_file()]  # sweeps (signsim.sweeps)
    if folders and len(folders) != len(runs):
        raise _UsageError("--from takes either saved runs or sweep folders, not both")
    paths = [] if folders else [_result_path(p) for p in runs]
    _require_matplotlib()  # before minutes of simulation
    with _claim(args.out, force=args.force, names=(f"{stem}.png", f"{stem}.pdf")) as out:
        bar = _Progress(args.quiet)
        try:
            if folders:
                results = [_load_sweep(folders)]
            elif paths:
                results = [_load(p) for p in paths]
            else:
                results = figures.runs_for(args.name, seeds=tuple(range(args.seeds)),
                                           progress=bar)
        finally:
            bar.close()
        fig = figures.build(args.name, results)
        try:
            written = [out.write_with(f"{stem}.png",
                                      lambda tmp: fig.savefig(tmp, dpi=150, format="png")),
                       out.write_with(f"{stem}.pdf", lambda tmp: fig.savefig(tmp, format="pdf"))]
        finally:
            pyplot = sys.modules.get("matplotlib.pyplot")
            if pyplot is not None:
                pyplot.close(fig)
    if not args.quiet:
        _emit("\n".join(str(p) for p in written))
    return 0


def _cmd_stages(args) -> int:
    import signsim

    if not 0 <= args.dominance:
        raise _UsageError(f"--dominance must be >= 0, got {args.dominance:g}")
    if not 0 < args.s21_threshold < 1:
        raise _UsageError(f"--s21-threshold must be in (0, 1), got {args.s21_threshold:g}")
    result = _load(_result_path(args.path))
    reports = signsim.stages.detect(result, dominance=args.dominance,
                                    s21_threshold=args.s21_threshold)
    c = result.config
    scales = signsim.theory.time_scales(c)
    lines = [f"{c.optimizer}, lr={c.lr:g}, sigma_0={c.sigma_0:g}, steps={c.steps}; predicted "
             + ", ".join(f"{k} ~ {v:.3g}" for k, v in scales.items())]
    for k, rep in enumerate(reports if isinstance(reports, list) else [reports]):
        if isinstance(reports, list):
            lines.append(f"replica {k} (seed {result.seeds[k]})")
        lines.append(rep.table())
    _emit("\n".join(lines))
    return 0


def _cmd_sweep(args) -> int:
    from .sweeps.command import cmd_sweep

    def config_of(name, file_set: dict, items: list):
        from .config import preset

        overrides = {**file_set, **_parse_set(items)}
        try:
            return preset(name, **overrides)
        except (ValueError, TypeError) as exc:
            raise _UsageError(str(exc)) from None

    if args.out.exists() and not args.out.is_dir():
        raise _UsageError(f"--out {args.out} is a file, not a folder")
    try:
        return cmd_sweep(args, config_of=config_of, usage_error=_UsageError)
    except KeyboardInterrupt:
        raise _Interrupted(f"interrupted; the finished batches are kept in {args.out}: the "
                           "same command resumes the sweep") from None


def _cmd_table(args) -> int:
    from .sweeps.command import cmd_table

    from .errors import SignsimFileError

    try:
        return cmd_table(args)
    except SignsimFileError as exc:  # a damaged file: a run-time failure (exit 1)
        raise _Failure(" ".join(str(exc).split())) from None
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _shard_arg(text: str) -> tuple:
    i, sep, n = text.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"expected i/N with 0 <= i < N, got {text!r}")
    return shard


def _add_sweep_parsers(sub) -> None:
    w = sub.add_parser("sweep", help="run a grid of configurations, batched, resumable",
                       description="Run every cell of a grid once per seed, batched into "
                       "vectorised replicas; each finished batch is kept in --out, and "
                       "running the same sweep again resumes it. Writes --out/table.csv.")
    w.add_argument("--preset", default=None, choices=["fig1", "fig2", "data_quality"],
                   help="the base configuration (default fig1, or the grid file's)")
    w.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the base configuration")
    w.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="an axis: FIELD=V1,V2,... or, zipped, F1,F2=A1:B1,A2:B2,...; "
                   "FIELD may be snr (sets sigma_p, E5)")
    w.add_argument("--grid-file", type=Path, metavar="FILE",
                   help="a TOML or JSON file with grid (and preset, set, seeds)")
    w.add_argument("--seeds", type=_int_in(1, _MAX_SEEDS), default=None,
                   help="seeds per cell: 0..N-1 (default 1, or the grid file's)")
    w.add_argument("--out", required=True, type=Path, help="the sweep's folder")
    where = w.add_mutually_exclusive_group()
    where.add_argument("--processes", type=_int_in(1, 1024), metavar="N",
                       help="run batches in N local worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run batches on the Dask scheduler at ADDRESS (signsim[dask])")
    w.add_argument("--shard", type=_shard_arg, metavar="i/N",
                   help="run only slice i of N of the runs (e.g. $SLURM_ARRAY_TASK_ID/N)")
    w.add_argument("--quiet", action="store_true", help="no progress, no summary line")

    t = sub.add_parser("table", help="print the table of a sweep (merging its shards)",
                       description="The table of the sweep kept in DIR (or in the folders "
                       "of its shards), one row per cell and seed, as CSV.")
    t.add_argument("folders", nargs="+", type=Path, metavar="DIR")
    t.add_argument("--csv", type=Path, metavar="FILE", help="write to FILE, not stdout")


# ------------------------------------------------------------------ parser


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a finite number expected, got {text!r}")
    return value


def _int_in(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text[:30]!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an int in [{lo}, {hi}], got {text[:30]}")
        return value

    parse.__name__ = "int"
    return parse


def _figure_names() -> tuple:
    from .figures import FIGURES

    return FIGURES


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="signsim", description="Simulate a two-layer transformer trained by "
                "SignGD, Adam or GD (arXiv 2410.04870) and look at its stages.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run one configuration and save it into a directory",
                       description="Run a preset with overrides; write result.npz, "
                       "config.json and summary.json (final losses, stage boundaries) into --out.")
    r.add_argument("--preset", default=None, choices=["fig1", "fig2", "data_quality"],
                   help="starting configuration (default fig1)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Config field, e.g. --set lr=2e-4 --set optimizer=adam")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="output directory")
    where.add_argument("--resume", type=Path, metavar="DIR",
                       help="continue the run checkpointed in DIR (DIR/checkpoint.npz) and "
                       "write its results into DIR")
    r.add_argument("--checkpoint-every", type=_int_in(1, _INT64_MAX), metavar="K",
                   help="save the run's state to --out/checkpoint.npz every K steps")
    r.add_argument("--force", action="store_true", help="write into a non-empty --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")

    f = sub.add_parser("figure", help="reproduce a figure (PNG and PDF)",
                       description="Reproduce fig1 (the stages), fig2 (SignGD vs Adam) or "
                       "data-quality (test loss against SNR) from scratch, or from saved runs.")
    f.add_argument("name", choices=_figure_names())
    f.add_argument("--out", required=True, type=Path, help="output directory")
    f.add_argument("--from", dest="runs", action="append", type=Path, metavar="RUN",
                   help="use a saved run (directory or .npz) instead of running; repeat for "
                   "fig2 (one SignGD, one Adam) and data-quality (one per optimizer and SNR); "
                   "for phase and data-quality also a sweep folder ('signsim sweep --out')")
    f.add_argument("--seeds", type=int, default=5,
                   help="seeds per point of data-quality and phase (default 5, at most "
                   f"{_MAX_SEEDS})")
    f.add_argument("--force", action="store_true", help="replace existing figure files")
    f.add_argument("--quiet", action="store_true", help="no progress bar, no file list")

    s = sub.add_parser("stages", help="print the stage table of a saved run",
                       description="Detect the stage boundaries T1-T4 of a saved run.")
    s.add_argument("path", type=Path, help="a directory written by 'signsim run' or a .npz")
    s.add_argument("--s21-threshold", type=_finite_float, default=0.01,
                   help="T4 threshold on s21, in (0, 1)")
    s.add_argument("--dominance", type=_finite_float, default=1.0,
                   help="T1 dominance factor, >= 0")
    _add_sweep_parsers(sub)
    return p


def _parse(argv):
    """(args, None), or (None, exit status) when argparse has answered (--help, or a bad
    argument already printed on one line)."""
    try:
        return _build_parser().parse_args(argv), None
    except SystemExit as exc:
        code = exc.code
        return None, code if isinstance(code, int) else (0 if code is None else 2)


def main(argv: list[str] | None = None) -> int:
    """The ``signsim`` command; returns the exit status (0, 1, 2 or 130, see above)."""
    with _sigterm_as_ctrl_c():
        return _main(argv)


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM (a batch system's stop) ends a command like Ctrl-C: a run saves what it has."""
    def stop(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv) -> int:
    prog = "signsim"
    try:
        args, code = _parse(argv)
        if args is None:
            _flush()
            return code
        prog = f"signsim {args.command}"
        if args.command == "figure" and not 1 <= args.seeds <= _MAX_SEEDS:
            raise _UsageError(f"--seeds must be in [1, {_MAX_SEEDS}], got {args.seeds}")
        code = {"run": _cmd_run, "figure": _cmd_figure, "stages": _cmd_stages,
                "sweep": _cmd_sweep, "table": _cmd_table}[args.command](args)
        _flush()
        return code
    except _StdoutClosed:
        _silence_stdout()
        return 1
    except KeyboardInterrupt as exc:
        _say(f"{prog}: {exc if isinstance(exc, _Interrupted) else 'interrupted'}")
        return 130
    except _UsageError as exc:
        _say(f"{prog}: error: {exc}")
        return 2
    except Exception as exc:  # one line, never a traceback
        _say(f"{prog}: error: {_describe(exc)}")
        return 1

