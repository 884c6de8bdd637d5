"""The command line: ``socketeer COMMAND ...``, or ``python -m socketeer COMMAND ...``.

Each command is a module of this package, named after the command and listed in
:data:`COMMANDS`. It provides:

- ``HELP``: one line, for the list of commands;
- ``DESCRIPTION``: what its ``--help`` says first;
- ``add_arguments(parser)``: adds its arguments to an :class:`argparse.ArgumentParser`;
- ``run(args) -> int``: runs it with the parsed arguments and returns the exit status.

Adding a command is writing its module and adding its name to :data:`COMMANDS`.

Errors are one line on standard error, never a traceback: a mistake in the command line
exits with status 2 (``{prog}: error: ...``, raised as :exc:`SystemExit` by argparse); a
failure when running (a module that cannot be imported, a port in use) with status 1
(``socketeer COMMAND: ...``). A command reports either by raising :exc:`CommandError`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

__all__ = ["main", "COMMANDS", "CommandError", "one_line"]

COMMANDS = ("connect", "demo", "serve", "echo", "bench", "rpc")
"""The commands, in the order ``--help`` lists them: each is the module of that name."""


class CommandError(Exception):
    """A command failed: :func:`main` prints the message as one line, and exits.

    Args:
        message: what went wrong, lower-case, without a final period.
        status: the exit status: 2 for a mistake in the command line (printed as argparse
            prints its own errors), 1 for a failure when running.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
        """The exit status."""


class _Command(Protocol):
    """What a command's module provides (see the module's description)."""

    HELP: str
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors take one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (usage: {self.prog} --help)\n")


def one_line(text: object) -> str:
    """``text`` on one line: runs of whitespace, newlines included, become one space."""
    return " ".join(str(text).split())


def _prog() -> str:
    """How the user called us: the ``socketeer`` script, or ``python -m socketeer``."""
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return "socketeer" if name in ("socketeer", "socketeer.exe") else "python -m socketeer"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command given in ``argv`` (``sys.argv[1:]`` by default); return the exit status.

    Raises:
        SystemExit: with status 2 for a mistake in the command line (after printing it), and
            with status 0 after printing ``--help``.
    """
    parser = _Parser(
        prog=_prog(), description="WebSockets for Python, from the wire to the browser."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command = cast(_Command, importlib.import_module(f"{__name__}.{name}"))
        subparser = commands.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(subparser)
        subparser.set_defaults(_command=name, _run=command.run, _parser=subparser)
    args = parser.parse_args(argv)
    try:
        status: int = args._run(args)
    except CommandError as exc:
        if exc.status == 2:
            args._parser.error(str(exc))
        print(f"socketeer {args._command}: {one_line(exc)}", file=sys.stderr)
        return exc.status
    return status
