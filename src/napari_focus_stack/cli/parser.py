"""The argument parser: the root parser and the engine options generated from :data:`OPTIONS`."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._version import __version__
from ..errors import ParameterError
from ..options import OPEN_ENDED, OPTIONS, EngineOptions, Option, format_number

__all__ = [
    "COMMANDS", "add_engine_options", "add_max_memory", "add_max_pixels", "add_scheduler", "build_parser",
    "engine_options",
]


def _help(opt: Option) -> str:
    """The option's help with its range and default, as ``--help`` shows them."""
    bits = []
    if opt.range is not None:
        lo, hi = opt.range
        bits.append(f"{format_number(lo)} or more" if hi >= OPEN_ENDED else f"{format_number(lo)}-{format_number(hi)}")
    if opt.kind is not bool and "default" not in opt.help:
        bits.append("default: " + ("automatic" if opt.default is None else str(opt.default)))
    return f"{opt.help} ({'; '.join(bits)})" if bits else opt.help



def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Add every engine option of :data:`~napari_focus_stack.options.OPTIONS` to `parser`.

    Flags, types, choices, defaults and help come from the options model;
    argparse only converts the text, and :class:`EngineOptions` checks the
    ranges, so that an out-of-range value gives the same one-line error as
    in Python.
    """
    group = parser.add_argument_group("engine")
    for opt in OPTIONS:
        kw: dict = {"dest": opt.name, "help": _help(opt)}
        if opt.kind is bool:
            kw["action"] = argparse.BooleanOptionalAction if opt.default else "store_true"
            kw["default"] = bool(opt.default)
        else:
            kw["type"] = opt.kind
            kw["default"] = opt.default
            if opt.choices is not None:
                kw["choices"] = opt.choices
            if opt.metavar is not None:
                kw["metavar"] = opt.metavar
        group.add_argument(opt.flag, **kw)


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-pixels``, the decompression-bomb limit of the readers."""
    parser.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="refuse frames of more than N pixels, a guard against decompression bombs "
        "(default: Pillow's limit, about 179 million; 0: no limit)",
    )


def add_max_memory(parser) -> None:
    """Add ``--max-memory``, the memory one stack may use (tiles are chosen to stay within it)."""
    parser.add_argument(
        "--max-memory", type=float, default=None, metavar="GIB",
        help="memory one stack may use, in GiB (e.g. 1 on a 4 GB Raspberry Pi running three at once); a stack "
        "that needs more is fused in tiles, as when the machine's free memory is short (default: no limit "
        "but the free memory)",
    )


def add_scheduler(parser, what: str = "stacks") -> None:
    """Add ``--scheduler``, an existing Dask scheduler to run `what` on (``BatchOptions.scheduler``)."""
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help=f"existing Dask scheduler to run the {what} on, e.g. tcp://host:8786"
    )


def check_max_pixels(value: int | None) -> None:
    """Raise :class:`ParameterError` for a negative ``--max-pixels``."""
    if value is not None and value < 0:
        raise ParameterError(f"--max-pixels must be 0 (no limit) or more, got {value}")


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The validated :class:`EngineOptions` among parsed arguments.

    Raises
    ------
    ParameterError
        A value out of its range.
    """
    return EngineOptions.from_mapping(args)


#: The commands, in the order ``--help`` lists them, with their one-line help.
COMMANDS = {
    "stack": "fuse one stack",
    "demo": "fuse a built-in synthetic stack",
    "info": "show the compute backend and GPU",
    "batch": "stack every stack of a scan (OpenScan and others)",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``napari-focus-stack`` parser with its ``stack``, ``batch``, ``demo`` and ``info`` commands.

    Given the arguments about to be parsed, only the command they name is
    built with its options (and its module imported: ``batch`` and ``demo``
    pull in the batch planner and the generator, a few hundredths of a
    second of every ``stack`` run); the others are listed by name. Without
    them, or for ``--help``, every command is built.
    """
    import importlib

    named = next((a for a in (argv or ()) if not a.startswith("-")), None)
    wanted = named if named in COMMANDS else None
    parser = argparse.ArgumentParser(
        prog="napari-focus-stack",
        description="Align and fuse focus stacks into one sharp image, with depth and confidence maps.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_line in COMMANDS.items():
        if wanted in (None, name):
            importlib.import_module(f".{name}", __package__).add_parser(sub)
        else:
            sub.add_parser(name, help=help_line)  # not the command given: never parsed
    return parser
