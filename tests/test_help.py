"""Every help a user can ask for, as they meet it: `ferkit --help`, bare `ferkit`, `python -m ferkit --help` and
`ferkit SUB --help` for every registered subcommand (taken from the parser, not a list kept by hand), each with
exit 0 (bare `ferkit`: the help and exit 1) and no traceback; each subcommand's help ends with 2-4 examples, and
every example parses with ferkit's own parser (so an example cannot name a flag that does not exist)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ferkit.cli import build_parser, main

FERKIT = Path(sys.executable).with_name("ferkit")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _nested(parser: argparse.ArgumentParser) -> list[str]:
    """Names of a subcommand's own subcommands (``ferkit pretrain resnet18``), if any."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return list(a.choices)
    return []


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cmd", [[str(FERKIT), "--help"], [sys.executable, "-m", "ferkit", "--help"]],
                         ids=["ferkit", "python-m-ferkit"])
def test_top_level_help_exits_0_and_lists_every_subcommand(cmd):
    proc = _run(*cmd)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.startswith("usage: ferkit")
    for name in _subcommands():
        assert f"\n    {name}" in proc.stdout, name


def test_bare_ferkit_prints_the_help_and_exits_1():
    proc = _run(str(FERKIT))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("usage: ferkit") and "predict" in proc.stdout


def test_version():
    proc = _run(str(FERKIT), "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("ferkit ")


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_help_exits_0_and_ends_with_examples(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert out.startswith(f"usage: ferkit {name}")
    examples = out[out.rindex("\nexamples:\n"):].splitlines()[2:]
    commands = [line.strip() for line in examples if line.strip() and not line.strip().startswith("#")]
    assert 2 <= len(commands) <= 4, out
    assert any(f"ferkit {name}" in c for c in commands), commands
    for sub in _nested(_subcommands()[name]):
        with pytest.raises(SystemExit) as e:
            main([name, sub, "--help"])
        assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: ferkit {name} {sub}")


def _example_commands() -> list[tuple[str, str]]:
    from importlib import import_module

    out = []
    for name in _subcommands():
        module = import_module(f"ferkit.commands.{'import_' if name == 'import' else name}")
        for _, command in module.EXAMPLES:
            out += [(name, part.strip()) for part in command.split("&&") if part.strip().startswith("ferkit ")]
    return out


@pytest.mark.parametrize("name,command", _example_commands(), ids=lambda v: v if " " not in v else None)
def test_every_example_parses(name, command):
    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse's way of refusing: the example names a flag or value that does not exist
        pytest.fail(f"example does not parse (exit {e.code}): {command}")
    assert args.command == argv[0]


@pytest.mark.parametrize("command", ["ferkit datasets", "ferkit datasets rafdb", "ferkit models"])
def test_examples_that_need_no_data_run(command, capsys):
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out.strip()


def _guide_commands() -> list[tuple[str, str]]:
    """Every ``ferkit ...`` line in the code blocks of README.md and the getting-started page."""
    import re

    root = Path(__file__).resolve().parents[1]
    out = []
    for page in (root / "README.md", root / "docs" / "getting-started.md", root / "docs" / "scale-out.md"):
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#")[0].strip()
                line = line.split("-m ferkit ", 1)[1] if "-m ferkit " in line else line
                if line.startswith("ferkit "):
                    out.append((page.name, line))
                elif line.startswith(("train ", "predict ")):
                    out.append((page.name, "ferkit " + line))
    return out


def test_the_guides_show_commands():
    assert len(_guide_commands()) >= 10


@pytest.mark.parametrize("page,command", _guide_commands())
def test_every_command_in_readme_and_guides_parses(page, command):
    import re

    command = re.sub(r'"?\$\{\w+\[@\]\}"?', "", command)         # a shell array that may expand to nothing
    argv = [("VALUE" if t.startswith("$") else t) for t in shlex.split(command)[1:]]   # shell variables
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{page}: command does not parse (exit {e.code}): {command}")
