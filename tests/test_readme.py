"""Every Python and shell block of the README runs, as written, against the repository and ../shared/data.

Blocks that need more than that (a fresh install, Kowalski, several GPUs, minutes of training) are marked in
the README with ``<!-- readme-test: skip: REASON -->`` on the line before the fence; a mark without a
reason fails. The blocks run in README order (later ones read what earlier ones wrote) in a scratch folder
holding links to the repository's models/ and configs/, with ../shared/data replaced by the bundle's path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!-- readme-test: skip(?::\s*(.*?))? -->\s*$")
LANGUAGES = {"python": "python", "bash": "shell", "sh": "shell", "shell": "shell"}
BLOCK_TIMEOUT_S = 900  # generous: on a quiet 2-core box the whole README takes ~2 min


def readme_blocks() -> list[tuple[int, str, str, str | None]]:
    """(line, kind, code, skip reason or None) for each python/shell block of the README."""
    text = (REPO / "README.md").read_text()
    blocks = []
    for match in FENCE.finditer(text):
        kind = LANGUAGES.get(match.group(1))
        if kind is None:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        blocks.append((text[: match.start()].count("\n") + 1, kind, match.group(2),
                       (skip.group(1) or "") if skip else None))  # fmt: skip
    return blocks


def test_skipped_blocks_say_why_and_the_rest_is_most_of_the_readme():
    blocks = readme_blocks()
    assert all(reason for *_, reason in blocks if reason is not None), "a readme-test: skip mark needs a reason"
    run = [b for b in blocks if b[3] is None]
    assert sum(kind == "python" for _, kind, _, _ in run) >= 3 and sum(kind == "shell" for _, kind, _, _ in run) >= 2


@pytest.mark.slow
def test_readme_blocks_run(shared_data, tmp_path):
    for name in ("models", "configs"):
        (tmp_path / name).symlink_to(REPO / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    for line, kind, code, skip in readme_blocks():
        if skip is not None:
            continue
        code = code.replace("../shared/data", str(shared_data))
        command = [sys.executable, "-c", code] if kind == "python" else ["bash", "-e", "-o", "pipefail", "-c", code]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"README block at line {line} failed:\n{code}\n{output[-3000:]}"
        assert "Traceback" not in output, f"README block at line {line}:\n{output[-3000:]}"
    assert (tmp_path / "night" / "report.html").stat().st_size > 100_000
