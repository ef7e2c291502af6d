"""Command line: ``signsim run ...`` (``python -m signsim ...``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line and exit code 2, never a traceback
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parse_set(items: list[str]) -> dict:
    """``--set key=value``: values are read as JSON where they parse (numbers), else strings."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="signsim", description="Simulate a two-layer transformer trained by "
                "SignGD, Adam or GD (arXiv 2410.04870).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="run one configuration and save it")
    r.add_argument("--preset", default="fig1", help="fig1 | fig2 | data_quality (default fig1)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Config field, e.g. --set lr=2e-4 (repeatable)")
    r.add_argument("--out", required=True, type=Path, help="output directory")
    r.add_argument("--force", action="store_true", help="write into a non-empty --out")
    r.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def _cmd_run(args) -> int:
    import signsim

    config = signsim.preset(args.preset, **_parse_set(args.set))
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ValueError(f"{out} is not empty; pass --force to write into it")
    result = signsim.run(config)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "result.npz", overwrite=args.force)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    summary = {k: float(result.history[k][-1]) for k in
               ("train_loss", "train_error", "test_loss", "test_error")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return {"run": _cmd_run}[args.command](args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as exc:
        print(f"signsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
