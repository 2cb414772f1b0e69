from applecider_core import cli


def test_unknown_command_is_a_helpful_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "installed commands" in err


def test_help_and_self_check(capsys):
    assert cli.main(["--help"]) == 0
    assert "cider check" in capsys.readouterr().out
    assert cli.main(["check"]) == 0
    assert "torch" in capsys.readouterr().out
