"""Every command's --help says what it does and shows an example."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.cli.verbs import VERBS


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_every_command_has_a_description_and_an_example(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb.name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert verb.help[:40].capitalize()[:20].lower() in out.lower() and "example:\n  wavepipe " in out
    assert all(action.help for action in _actions(verb)), f"{verb.name}: an option without help"


def _actions(verb):
    import argparse

    p = argparse.ArgumentParser()
    verb.arguments(p)
    return [a for a in p._actions if not isinstance(a, argparse._HelpAction)]
