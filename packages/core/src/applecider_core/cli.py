"""``cider``: one command line for every package.

Subcommands are registered by the installed packages as entry points in the group ``applecider.commands``;
the entry point's name is the command path with dots (``train.spectra``, ``data.build``, ``classify``) and
its value a ``main(argv) -> int`` function. ``cider train spectra --config X`` runs the longest registered
match (``train.spectra``) with the remaining arguments. This keeps dependencies one-way: core knows no
modality, each package brings its own commands.

User mistakes are handled here, once, for every command: a command raises the project's specific errors
(``CiderError`` subclasses such as ConfigError, DatasetError, PretrainedError; ``ValueError`` such as
FusionError or AlertParseError; ``OSError``) or an argparse error, and ``cider`` prints one line on stderr
(``cider COMMAND: error: what is wrong; what to do``). Exit codes: 0 done, 1 ran but some items failed
(the command's own return value), 2 a user error, 3 an unexpected internal error (a bug: one line, and the
traceback with ``--debug``), 130 interrupted. ``--debug`` anywhere on the line shows every traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import distributions, entry_points
from pathlib import Path

from .config import did_you_mean
from .errors import CiderError

ENTRY_POINT_GROUP = "applecider.commands"
HELP_FLAGS = ("-h", "--help", "help")
USER_ERRORS = (CiderError, ValueError, OSError)
EXIT_USER_ERROR, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 2, 3, 130

# Commands of the full project and the distribution providing each, for a helpful "not installed" error.
KNOWN_COMMANDS = {
    "data.build": "applecider-data", "train.photometry": "applecider-photometry",
    "pretrain.photometry": "applecider-photometry", "evaluate.photometry": "applecider-photometry",
    "train.images": "applecider-images", "evaluate.images": "applecider-images",
    "train.spectra": "applecider-spectra", "evaluate.spectra": "applecider-spectra",
    "evaluate": "applecider-fusion", "classify": "applecider-fusion", "examples": "applecider-fusion",
    "export.onnx": "applecider-fusion",
    "report": "applecider-fusion",
    "stream": "applecider-stream",
}  # fmt: skip


class UsageError(CiderError):
    """Bad command-line arguments (raised in place of argparse's usage-and-exit)."""


def registered_commands() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _spoken(name: str) -> str:
    return "cider " + name.replace(".", " ")


def _usage(commands: Sequence[str], group: str | None = None) -> str:
    shown = sorted(n for n in commands if group is None or n == group or n.startswith(group + "."))
    lines = [f"usage: cider {group or 'COMMAND'} {'SUBCOMMAND' if group else '[SUBCOMMAND]'} [options]", "",
             "installed commands:", *(f"  {_spoken(name)}" for name in shown)]
    missing = sorted(n for n in set(KNOWN_COMMANDS) - set(commands) if group is None or n.startswith(group + "."))
    if missing:
        lines += ["", "not installed here (pip install the package named):"]
        lines += [f"  {_spoken(name)}  ({KNOWN_COMMANDS[name]})" for name in missing]
    lines += ["", "Run `cider COMMAND --help` for the options of one command; add --debug to see tracebacks."]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe(error: BaseException) -> str:
    """One line for a user error: the message, or for an OSError its reason and the path."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.strerror or 'cannot use'}: {error.filename} (check the path and its permissions)"
    return _one_line(str(error)) or type(error).__name__


@contextlib.contextmanager
def _usage_errors_raise() -> Iterator[None]:
    """Inside a command, argparse errors raise UsageError instead of printing usage and exiting."""

    def error(parser: argparse.ArgumentParser, message: str):
        raise UsageError(message)

    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def run_command(name: str, entry_point, argv: Sequence[str], debug: bool = False) -> int:
    """Run one registered command and turn every failure into an exit code (see module docstring)."""
    prog = _spoken(name)
    try:
        with _usage_errors_raise():
            return int(entry_point.load()(list(argv)) or 0)
    except SystemExit as exit_:  # argparse --help (0), parser.exit(2, msg), or SystemExit("message")
        if exit_.code is None or isinstance(exit_.code, int):
            return int(exit_.code or 0)
        print(f"{prog}: error: {_one_line(exit_.code)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as error:
        if debug:
            raise
        print(f"{prog}: error: {describe(error)} (see `{prog} --help`)", file=sys.stderr)
        return EXIT_USER_ERROR
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"{prog}: error: {describe(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:
        if debug:
            raise
        print(f"{prog}: internal error: {type(error).__name__}: {describe(error)} (a bug; rerun with --debug "
              "for the traceback and please report it)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _resolve(argv: Sequence[str], commands: dict) -> tuple[str | None, list[str]]:
    """The registered command named by the first words of ``argv`` (longest match) and the rest."""
    for n_words in (2, 1):
        name = ".".join(argv[:n_words])
        if len(argv) >= n_words and name in commands:
            return name, list(argv[n_words:])
    return None, list(argv)


def _unknown(argv: Sequence[str], commands: dict) -> int:
    groups = {name.split(".")[0] for name in commands if "." in name}
    if argv[0] in groups:
        subs = sorted(name.split(".", 1)[1] for name in commands if name.startswith(argv[0] + "."))
        if len(argv) == 1 or argv[1] in HELP_FLAGS:
            print(_usage(list(commands), argv[0]), file=sys.stdout if len(argv) > 1 else sys.stderr)
            return 0 if len(argv) > 1 else EXIT_USER_ERROR
        wanted, choices = argv[1], subs
        message = f"cider: error: unknown command {' '.join(argv[:2])!r}; `cider {argv[0]}` takes {' | '.join(subs)}"
    else:
        wanted = argv[0]
        choices = sorted({name.split(".")[0] for name in commands} | {n.split(".")[0] for n in KNOWN_COMMANDS})
        message = f"cider: error: unknown command {argv[0]!r}"
    missing = next((KNOWN_COMMANDS[n] for n in (".".join(argv[:2]), argv[0]) if n in KNOWN_COMMANDS), None)
    if missing:
        message += f" (it is provided by {missing}, which is not installed: pip install -e <its folder>)"
    else:
        message += did_you_mean(wanted, choices)
    print(f"{message}; run `cider --help` for the list", file=sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    commands = registered_commands()
    if not argv or argv[0] in HELP_FLAGS:
        print(_usage(list(commands)), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_USER_ERROR
    name, rest = _resolve(argv, commands)
    if name is None:
        return _unknown(argv, commands)
    code = run_command(name, commands[name], rest, debug)
    subcommands = sorted(_spoken(n) for n in commands if n.startswith(name + "."))
    if code == 0 and subcommands and rest and rest[0] in HELP_FLAGS:
        print(f"\nsubcommands: {', '.join(subcommands)} (each has --help)")
    return code


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for benchmark tables and ``cider check``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _runtime_lines() -> list[str]:
    """torch and (when installed) onnxruntime: version, threads, devices."""
    import os

    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = ["cpu", *(f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(cuda))]
    lines = [f"torch {torch.__version__}: {torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} "
             f"inter-op threads; devices {', '.join(devices)}"]
    try:
        import onnxruntime
    except ImportError:
        lines.append("onnxruntime: not installed")
    else:
        lines.append(f"onnxruntime {onnxruntime.__version__}: intra-op threads default to the {os.cpu_count()} "
                     f"CPUs; providers {', '.join(onnxruntime.get_available_providers())}")
    return lines


def self_check(argv: Sequence[str] | None = None) -> int:
    """``cider check``: the installed AppleCiDEr packages and commands, torch/onnxruntime threads and devices."""
    parser = argparse.ArgumentParser(prog="cider check", description=self_check.__doc__.split(": ", 1)[1])
    parser.parse_args(list(argv or []))
    members = sorted((d.metadata["Name"], d.version) for d in distributions()
                     if (d.metadata["Name"] or "").lower().startswith("applecider-"))
    print(f"python {platform.python_version()}; {cpu_model()}; {len(members)} AppleCiDEr packages installed:")
    for member, version in dict(members).items():
        print(f"  {member} {version}")
    for line in _runtime_lines():
        print(line)
    print("commands: " + ", ".join(_spoken(name) for name in sorted(registered_commands())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
