"""``cider``: one command line for every package.

Subcommands are registered by the installed packages as entry points in the group ``applecider.commands``;
the entry point's name is the command path with dots (``train.spectra``, ``data.build``, ``classify``) and
its value a ``main(argv) -> int`` function. ``cider train spectra --config X`` runs the longest registered
match (``train.spectra``) with the remaining arguments. This keeps dependencies one-way: core knows no
modality, each package brings its own commands.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "applecider.commands"

# Commands of the full project and the distribution providing each, for a helpful "not installed" error.
KNOWN_COMMANDS = {
    "data.build": "applecider-data", "train.photometry": "applecider-photometry",
    "pretrain.photometry": "applecider-photometry", "evaluate.photometry": "applecider-photometry",
    "train.images": "applecider-images", "evaluate.images": "applecider-images",
    "train.spectra": "applecider-spectra", "evaluate.spectra": "applecider-spectra",
    "evaluate": "applecider-fusion", "classify": "applecider-fusion", "examples": "applecider-fusion",
    "export.onnx": "applecider-fusion", "stream": "applecider-stream",
}  # fmt: skip


def registered_commands() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _usage(commands: Sequence[str]) -> str:
    lines = ["usage: cider COMMAND [SUBCOMMAND] [options]", "", "installed commands:"]
    lines += [f"  cider {name.replace('.', ' ')}" for name in sorted(commands)]
    missing = sorted(set(KNOWN_COMMANDS) - set(commands))
    if missing:
        lines += ["", "not installed here (pip install the package named):"]
        lines += [f"  cider {name.replace('.', ' ')}  ({KNOWN_COMMANDS[name]})" for name in missing]
    lines += ["", "Run `cider COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    commands = registered_commands()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(list(commands)))
        return 0 if argv else 2
    for n_words in (2, 1):
        name = ".".join(argv[:n_words])
        if len(argv) >= n_words and name in commands:
            return int(commands[name].load()(argv[n_words:]) or 0)
    wanted = ".".join(argv[:2])
    hint = next((KNOWN_COMMANDS[n] for n in (wanted, argv[0]) if n in KNOWN_COMMANDS), None)
    message = f"cider: unknown command {' '.join(argv[:2])!r}"
    if hint:
        message += f" (it is provided by {hint}, which is not installed: pip install -e <its folder>)"
    print(f"{message}\n\n{_usage(list(commands))}", file=sys.stderr)
    return 2


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for benchmark tables and ``cider check``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def self_check(argv: Sequence[str] | None = None) -> int:
    """``cider check``: report the installed packages, torch threads and devices."""
    import torch

    from . import __version__

    print(f"applecider-core {__version__}; torch {torch.__version__}; {cpu_model()}; threads {torch.get_num_threads()}; "
          f"cuda {'yes (' + str(torch.cuda.device_count()) + ')' if torch.cuda.is_available() else 'no'}")
    for name in sorted(registered_commands()):
        print(f"  cider {name.replace('.', ' ')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
