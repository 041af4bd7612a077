"""`ferkit` / `python -m ferkit`: parses arguments and calls into the library; holds no logic of its own.

Each subcommand lives in ``ferkit.commands.<name>`` with ``register(subparsers)`` and ``run(args) -> int``.
Errors a person can cause print one sentence and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import sys

from ferkit.errors import FerkitError

#: subcommands in the order `ferkit --help` lists them
COMMANDS = ("synth", "datasets", "align", "pretrain", "train", "evaluate", "compare", "predict", "embed", "identity", "export", "crossdata",
            "serve", "demo", "import", "models", "install", "doctor")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-line texts as argparse does; keeps texts that hold line breaks (module docstrings used as
    descriptions, the examples epilog) as they are written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip("\n"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples_epilog(examples: tuple[tuple[str, str], ...]) -> str:
    """The ``examples:`` block at the end of a subcommand's help: a comment line, then the command."""
    lines = ["examples:"]
    for what, command in examples:
        lines += [f"  # {what}", f"  {command}"]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferkit",
        description="Facial expression recognition: DICE-FER, UA-FER and a baseline; audits; inference.",
        epilog="Run `ferkit COMMAND --help` for a command's options and examples. "
               "Start with `ferkit predict photo.jpg --annotate out/` (the built-in real model).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = f"ferkit.commands.{name}_" if keyword.iskeyword(name) else f"ferkit.commands.{name}"  # import_
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue
            raise
        p = mod.register(sub)
        p.formatter_class = HelpFormatter
        p.epilog = examples_epilog(mod.EXAMPLES)
        p.set_defaults(_run=mod.run)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ferkit import __version__

        print(f"ferkit {__version__}")
        return 0
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        from ferkit.plugins import import_plugins

        import_plugins()                  # $FERKIT_PLUGINS: methods registered outside ferkit
        return int(args._run(args) or 0)
    except FerkitError as e:
        if args.debug:
            raise
        print(f"ferkit: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ferkit: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        if args.debug:
            raise
        print(f"ferkit: error: {e.strerror or e}: {e.filename}.", file=sys.stderr)
        return 2
