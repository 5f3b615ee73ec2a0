"""The ``lsd`` command line as a newcomer meets it: ``--version``, defaults and help in ``--help``,
one ``--dataset`` and one ``--seed`` default across commands (the reproductions')."""

import argparse

import pytest

import lsd
from lsd.cli import build_parser, main
from lsd.reproduction.cli import build_parser as reproduction_parser
from lsd.reproduction.runner import RunOptions


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lsd {lsd.__version__}"


def _nested(command: str, parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and the parsers of its own subcommands (``lsd cache build``, ``lsd data prepare``)."""
    found = [(command, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _nested(f"{command} {name}", child)
    return found


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_has_help_and_help_shows_its_default(command):
    for full, parser in _nested(command, _subcommands()[command]):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            assert action.help, f"lsd {full} {name}: no help text"
            if action.default not in (None, False, argparse.SUPPRESS) and "default" not in action.help:
                assert f"(default: {action.default})" in text, f"lsd {full} --help: no default for {name}"


def _parsed(command: str) -> argparse.Namespace:
    required = {
        "evaluate": ["--checkpoint", "c", "--data", "d"],
        "reconstruct": ["images", "--model", "m", "--output", "o"],
        "compose": ["--checkpoint", "c", "--data", "d", "--output", "o", "--library", "l"],
        "edit": ["--checkpoint", "c", "--data", "d", "--output", "o"],
        "evaluate-generation": ["--checkpoint", "c", "--data", "d", "--output", "o", "--library", "l"],
    }
    return build_parser().parse_args([command, *required[command]])


def test_one_seed_default_across_commands_the_reproductions():
    reproduction = reproduction_parser("movi-e").parse_args([]).seed
    assert reproduction == RunOptions(output=".").seed == 42
    for command in ("evaluate", "reconstruct", "compose", "edit", "evaluate-generation"):
        assert _parsed(command).seed == reproduction, f"lsd {command} --seed"


def test_one_dataset_default_across_commands_the_standin_reader():
    for command in ("evaluate", "compose", "edit", "evaluate-generation"):
        assert _parsed(command).dataset == "synth", f"lsd {command} --dataset"
