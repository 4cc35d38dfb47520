"""Every sub-command and option says what it does; ``--version`` answers."""

from __future__ import annotations

import argparse

import pytest

from oddwatch.cli import build_parser, main


def parsers(parser: argparse.ArgumentParser, name: str = "oddwatch") -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                out += parsers(p, f"{name} {sub}")
    return out


def test_every_option_has_help() -> None:
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in parsers(build_parser())
               for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
               and not a.help]
    assert missing == []


def test_eval_series_and_logs_have_their_own_help() -> None:
    subs = dict(parsers(build_parser()))
    series, logs = subs["oddwatch eval series"].format_help(), subs["oddwatch eval logs"].format_help()
    assert series != logs and "--plots" in series and "--plots" not in logs and "--session-regex" in logs
    args = build_parser().parse_args(["eval", "logs", "x.log", "--out", "o", "--format", "bgl"])
    assert (args.kind, args.format, args.plots) == ("logs", "bgl", None)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("oddwatch ")
