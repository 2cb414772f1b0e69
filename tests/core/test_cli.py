"""The ``cider`` front end: help at every level, typos, one-line errors, exit codes, ``--debug``, ``cider check``."""

from __future__ import annotations

import pytest

from applecider_core import cli


def test_no_arguments_and_help(capsys):
    assert cli.main([]) == 2
    assert "installed commands" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "cider check" in capsys.readouterr().out


@pytest.mark.parametrize("group", ["data", "train", "pretrain"])
def test_group_help_lists_its_subcommands(group, capsys):
    assert cli.main([group, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: cider {group} SUBCOMMAND" in out
    assert all(line.strip().startswith(f"cider {group} ") for line in out.splitlines() if line.startswith("  cider"))
    assert cli.main([group]) == 2  # a group alone: the same list, as a usage error
    assert f"cider {group} " in capsys.readouterr().err


def test_every_registered_command_has_help_under_its_own_name(capsys):
    for name in sorted(cli.registered_commands()):
        words = name.split(".")
        assert cli.main([*words, "--help"]) == 0, name
        captured = capsys.readouterr()
        assert f"usage: cider {' '.join(words)}" in captured.out, name
        assert "Traceback" not in captured.err


def test_help_of_a_command_with_subcommands_names_them(capsys):
    assert cli.main(["evaluate", "--help"]) == 0
    assert "cider evaluate photometry" in capsys.readouterr().out


def test_check_help_does_not_run_the_check(capsys):
    assert cli.main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: cider check" in out and "torch" not in out.split("options")[-1]


@pytest.mark.parametrize(("argv", "suggestion"), [(["clasify"], "'classify'"), (["train", "photmetry"], "'photometry'"),
                                                  (["evalute"], "'evaluate'")])
def test_typos_get_a_did_you_mean(argv, suggestion, capsys, error_line):
    assert cli.main(argv) == 2
    assert f"did you mean {suggestion}?" in error_line()


def test_unknown_command_without_a_close_match(capsys, error_line):
    assert cli.main(["frobnicate"]) == 2
    line = error_line()
    assert "unknown command 'frobnicate'" in line and "cider --help" in line and "did you mean" not in line


class _FakeEntryPoint:
    def __init__(self, function):
        self.function = function

    def load(self):
        return self.function


def _with_command(monkeypatch, function) -> None:
    monkeypatch.setattr(cli, "registered_commands", lambda: {"fake": _FakeEntryPoint(function)})


def test_internal_errors_are_one_line_and_a_traceback_only_with_debug(monkeypatch, capsys, error_line):
    def broken(argv):
        raise TypeError("unsupported operand")

    _with_command(monkeypatch, broken)
    assert cli.main(["fake"]) == 3
    line = error_line()
    assert "internal error: TypeError: unsupported operand" in line and "--debug" in line
    with pytest.raises(TypeError):
        cli.main(["fake", "--debug"])


def test_user_errors_exit_2_and_interrupts_130(monkeypatch, capsys, error_line):
    def missing_file(argv):
        open("/nonexistent/input.avro")

    _with_command(monkeypatch, missing_file)
    assert cli.main(["fake"]) == 2
    assert "No such file or directory: /nonexistent/input.avro" in error_line()

    def message_exit(argv):
        raise SystemExit("no labelled light curves in data/x")

    _with_command(monkeypatch, message_exit)
    assert cli.main(["fake"]) == 2
    assert "cider fake: error: no labelled light curves" in error_line()

    def interrupted(argv):
        raise KeyboardInterrupt

    _with_command(monkeypatch, interrupted)
    assert cli.main(["fake"]) == 130


def test_argparse_errors_become_one_line(monkeypatch, capsys, error_line):
    import argparse

    def command(argv):
        parser = argparse.ArgumentParser(prog="cider fake")
        parser.add_argument("--config", required=True)
        parser.parse_args(argv)

    _with_command(monkeypatch, command)
    assert cli.main(["fake"]) == 2
    line = error_line()
    assert "the following arguments are required: --config" in line and "cider fake --help" in line
    assert argparse.ArgumentParser.error.__name__ == "error" and "cli" not in argparse.ArgumentParser.error.__module__


def test_self_check_lists_members_threads_and_devices(capsys):
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    for member in ("applecider-core", "applecider-data", "applecider-photometry", "applecider-images",
                   "applecider-spectra", "applecider-fusion"):
        assert f"  {member} 0." in out
    assert "intra-op" in out and "inter-op threads" in out and "devices cpu" in out
    assert "onnxruntime" in out and "commands: " in out
