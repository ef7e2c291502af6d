"""``signsim sweep`` and ``signsim table``: the grid from ``--grid`` arguments or a grid file
(TOML or JSON), the sweep into ``--out``, its progress, and its table as CSV.

A grid file holds the same things as the arguments (each optional but ``grid``)::

    preset = "data_quality"
    seeds = 10
    [set]
    steps = 1800
    [grid]
    snr = [0.25, 0.5, 1, 2, 4, 8]
    "optimizer,lr" = [["signgd", 1e-3], ["adam", 1e-3], ["gd", 1.0]]
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path

from ..errors import SignsimFileError

__all__ = ["parse_grid", "read_grid_file", "cmd_sweep", "cmd_table", "table_csv"]


class GridError(ValueError):
    """A --grid argument or grid file that cannot be read (a bad argument: exit 2)."""


def _value(text: str):
    """A grid value: JSON where it parses (numbers, true/false), else the string itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        raise GridError(f"--grid: {text!r} is not a finite number")
    return value if isinstance(value, (int, float, str, bool)) else text


def parse_grid(items: list) -> dict:
    """``--grid FIELD=v1,v2`` and ``--grid F1,F2=a1:b1,a2:b2`` (a zipped axis) as a grid."""
    grid = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if key in map(",".join, (k if isinstance(k, tuple) else (k,) for k in grid)):
            raise GridError(f"--grid {key} is given twice; give each axis once")
        if not sep or not key or not raw:
            raise GridError(f"--grid expects FIELD=V1,V2,... or F1,F2=A1:B1,A2:B2,...; "
                            f"got {item!r}")
        names = tuple(key.split(","))
        points = raw.split(",")
        if len(names) == 1:
            grid[names[0]] = [_value(p) for p in points]
            continue
        values = []
        for p in points:
            parts = p.split(":")
            if len(parts) != len(names):
                raise GridError(f"--grid {key}: each value must give {len(names)} parts "
                                f"separated by ':'; got {p!r}")
            values.append(tuple(_value(x) for x in parts))
        grid[names] = values
    return grid


def read_grid_file(path: Path) -> dict:
    """A grid file (module docstring) as a dict with ``grid`` and optional ``preset``,
    ``set``, ``seeds``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GridError(f"--grid-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GridError(f"--grid-file {path}: not UTF-8 text") from None
    try:
        data = _toml(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:
        raise GridError(f"--grid-file {path}: not valid {path.suffix[1:] or 'JSON'} ({exc})") \
            from None
    known = {"grid", "preset", "set", "seeds"}
    if not isinstance(data, dict) or "grid" not in data or set(data) - known:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise GridError(f"--grid-file {path}: expected a table with 'grid' and optionally "
                        f"'preset', 'set', 'seeds'; got {got}")
    for part, kind in (("grid", dict), ("set", dict), ("preset", str), ("seeds", int)):
        if part in data and not isinstance(data[part], kind):
            raise GridError(f"--grid-file {path}: '{part}' must be a {kind.__name__}; got "
                            f"{data[part]!r}")
    grid = {}
    for key, values in data["grid"].items():
        names = tuple(key.split(","))
        grid[names if len(names) > 1 else key] = (
            [tuple(v) if isinstance(v, list) else v for v in values]
            if len(names) > 1 and isinstance(values, list) else values)
    return {**data, "grid": grid}


def _toml(text: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise GridError("a TOML grid file needs Python 3.11 or the tomli package; "
                            "use a .json grid file instead") from None
    return tomllib.loads(text)


# ------------------------------------------------------------------ the commands


class _Progress:
    """Runs done, elapsed and time left: tqdm when installed, else one line on stderr."""

    def __init__(self, quiet: bool):
        self.quiet, self.t0, self.bar = quiet, time.perf_counter(), None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = _tqdm(total)
        if self.bar is not False:
            self.bar.update(done - self.bar.n)
            return
        elapsed = time.perf_counter() - self.t0
        left = elapsed * (total - done) / done if done else math.nan
        end = "\r" if sys.stderr.isatty() else "\n"
        sys.stderr.write(f"{done}/{total} runs, {elapsed:.1f} s elapsed, "
                         f"about {left:.1f} s left{end}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        elif self.bar is False and sys.stderr.isatty():
            sys.stderr.write("\n")


def _tqdm(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return False
    return tqdm(total=total, unit="run", file=sys.stderr)


def _executor(args):
    if args.scheduler is not None:
        return args.scheduler
    return args.processes


def cmd_sweep(args, *, config_of, usage_error) -> int:
    """``signsim sweep``; ``config_of(preset, set_items)`` makes the base Config and
    ``usage_error`` is the exception of a bad argument."""
    from . import sweep

    spec = {"grid": {}, "set": {}}
    try:
        if args.grid_file is not None:
            spec.update(read_grid_file(args.grid_file))
        extra = parse_grid(args.grid)
    except GridError as exc:
        raise usage_error(str(exc)) from None
    both = sorted(set(map(str, extra)) & set(map(str, spec["grid"])))
    if both:
        raise usage_error(f"--grid gives {both}, which the grid file gives too")
    grid = {**spec["grid"], **extra}
    if not grid:
        raise usage_error("give the grid with --grid FIELD=V1,V2,... or --grid-file FILE")
    base = config_of(args.preset or spec.get("preset") or "fig1", spec["set"], args.set)
    seeds = args.seeds if args.seeds is not None else spec.get("seeds", 1)
    bar = _Progress(args.quiet)
    try:
        result = sweep(base, grid, seeds=seeds, out=args.out, executor=_executor(args),
                       shard=args.shard, progress=bar)
    except SignsimFileError:  # a damaged file in the folder: a run-time failure (exit 1)
        raise
    except ValueError as exc:
        where = f" (in {args.grid_file})" if args.grid_file is not None else ""
        raise usage_error(f"{exc}{where}") from None
    finally:
        bar.close()
    _write_table(args.out / "table.csv", table_csv(result))
    counts = {s: int((result.status == s).sum()) for s in ("ok", "error", "missing")}
    if not args.quiet:
        print(json.dumps({"runs": len(result), "computed": result.computed,
                          "reused": result.reused, **counts,
                          "table": str(args.out / "table.csv")}))
    return 0


def cmd_table(args) -> int:
    """``signsim table DIR...``: the merged table of a sweep's folders as CSV on stdout."""
    from . import load

    text = table_csv(load(*args.folders))
    if args.csv is not None:
        _write_table(args.csv, text)
    else:
        sys.stdout.write(text)
    return 0


def table_csv(result) -> str:
    """The table as CSV (floats in full precision: ``repr``)."""
    columns = result.columns()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*columns.values()):
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])
    return buf.getvalue()


def _write_table(path: Path, text: str) -> None:
    """The table, replaced atomically (it is derived from the folder, never user data)."""
    from .store import write_atomic_text

    write_atomic_text(path, text, replace=True)
