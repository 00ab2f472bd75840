"""Command-line entry point: `gpttui run | bench | prepare`.

Nothing heavy is imported at module level, so `gpttui --help` returns without
loading torch or textual.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import Config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpttui",
        description="Train nanoGPT-style GPT models and watch them live in the terminal.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train from a TOML config, with the live dashboard on a terminal")
    run.add_argument("config", help="TOML config file, for example config/small.toml")
    _add_overrides(run)
    run.add_argument("--headless", action="store_true",
                     help="print plain log lines instead of the dashboard (automatic when stdout is not a terminal)")
    run.add_argument("--out-dir", help="run directory (default: <run.out_dir>/<run.name>-<timestamp>)")
    run.add_argument("--resume", metavar="CKPT", help="continue from a ckpt.pt written by gpttui or nanoGPT")
    run.add_argument("--engine", choices=("thread", "process"), default="thread",
                     help="run the trainer on a thread of this process or in a child process (default: thread)")
    run.add_argument("--profile-at", type=int, metavar="STEP",
                     help="capture a profiler window starting at this step")

    bench = commands.add_parser("bench", help="time training steps and print ms/iter, tokens/s and MFU")
    bench.add_argument("config", help="TOML config file, for example config/bench.toml")
    _add_overrides(bench)

    prepare = commands.add_parser("prepare", help="tokenize a text file into train.bin / val.bin")
    prepare.add_argument("text", help="UTF-8 text file")
    prepare.add_argument("--tokenizer", choices=("char", "gpt2"), default="char",
                         help="character vocabulary, or GPT-2 BPE through tiktoken (default: char)")
    prepare.add_argument("--tiktoken-file", metavar="FILE",
                         help="local GPT-2 rank file (gpt2.tiktoken) for machines without internet access")
    prepare.add_argument("--out", required=True, metavar="DIR", help="output directory")
    prepare.add_argument("--val-fraction", type=float, default=0.1, help="share of the text held out for validation")
    return parser


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key; the value is parsed as TOML (repeatable)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handlers = {"run": _cmd_run, "bench": _cmd_bench, "prepare": _cmd_prepare}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("gpttui: interrupted", file=sys.stderr)
        return 130


def _error(message: str, code: int) -> int:
    print(f"gpttui: error: {message}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> Config | None:
    from engine.config import ConfigError, load_config

    try:
        return load_config(args.config, args.overrides)
    except ConfigError as exc:
        _error(str(exc), EXIT_USAGE)
        return None


def _run_dir(config: Config, out_dir: str | None, resume: str | None) -> Path:
    if out_dir:
        return Path(out_dir)
    if resume:
        return Path(resume).resolve().parent
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(config.run.out_dir) / f"{config.run.name}-{stamp}"


def _cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_USAGE
    from gpttui.bridge import start_engine

    run_dir = _run_dir(config, args.out_dir, args.resume)
    host = start_engine(config, host=args.engine, run_dir=run_dir, resume=args.resume)
    if args.profile_at is not None:
        from engine.events import CaptureProfile

        host.send(CaptureProfile(start_step=args.profile_at))
    if args.headless or not sys.stdout.isatty():
        from gpttui.headless import HeadlessReporter

        reporter = HeadlessReporter(host, log_interval=config.train.log_interval)
        reporter.install_signal_handlers()
        finished = reporter.run()
        return EXIT_OK if finished.reason != "failed" else EXIT_FAILED
    from gpttui.app import run_app

    return run_app(host, config)


def _cmd_bench(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_USAGE
    import tempfile

    from gpttui.bench import run_bench

    with tempfile.TemporaryDirectory(prefix="gpttui-bench-") as tmp:
        return run_bench(config, Path(tmp))


def _cmd_prepare(args: argparse.Namespace) -> int:
    from engine.data import DataError, prepare

    try:
        info = prepare(args.text, args.out, tokenizer=args.tokenizer, tiktoken_file=args.tiktoken_file,
                       val_fraction=args.val_fraction)
    except DataError as exc:
        return _error(str(exc), EXIT_FAILED)
    print(info.summary() if hasattr(info, "summary") else info)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
