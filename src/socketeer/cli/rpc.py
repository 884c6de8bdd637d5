"""``socketeer rpc SUBCOMMAND``: tools for RPC applications.

``socketeer rpc types MODULE:ATTR`` prints the TypeScript declaration of the methods of an
RPC application (:class:`~socketeer.rpc.RPC`, or any :class:`~socketeer.rpc.Routes`), for
the proxy of the browser client: see :mod:`._typescript` for what it declares and how it
types them, and ``docs/cli.md`` for the user's guide.

Each subcommand has a function ``_run_NAME(args) -> int``, set as ``args._rpc_run`` by its
parser; :func:`run` calls it.
"""

from __future__ import annotations

import argparse
import logging
import types
from collections.abc import Callable

from ..rpc.routes import Routes
from . import CommandError
from ._app import app_spec, load_app
from ._serving import LOG_FORMAT, add_log_level
from ._typescript import RESERVED_WORDS, declaration

__all__ = ["HELP", "DESCRIPTION", "DEFAULT_INTERFACE", "add_arguments", "run"]

HELP = "tools for RPC applications: rpc types"
"""The command's line in the list of commands."""

DESCRIPTION = "Tools for RPC applications (socketeer.rpc.RPC)."
"""What ``--help`` says of the command."""

TYPES_DESCRIPTION = (
    "Print the TypeScript declaration of the methods of the RPC application MODULE:ATTR "
    "(e.g. app:rpc), for the proxy of the browser client: an interface whose members follow "
    "the dotted method names, each typed from the Python signature and annotations, and "
    "returning a Promise. The current directory comes first on the import path."
)

DEFAULT_INTERFACE = "API"
"""The name of the interface without ``--name``."""

_NOT_TYPE_NAMES = RESERVED_WORDS | frozenset(
    "any bigint boolean never number object string symbol undefined unknown".split()
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands of ``rpc`` to a command line parser."""
    subcommands = parser.add_subparsers(
        title="subcommands", metavar="SUBCOMMAND", dest="_rpc_subcommand", required=True
    )
    types = subcommands.add_parser(
        "types",
        help="print the TypeScript declaration of an app's methods",
        description=TYPES_DESCRIPTION,
    )
    types.add_argument(
        "app",
        metavar="MODULE:ATTR",
        type=app_spec,
        help="the RPC application: attribute ATTR of module MODULE, e.g. app:rpc",
    )
    types.add_argument(
        "--output", "-o", metavar="FILE", help="write it to FILE rather than standard output"
    )
    types.add_argument(
        "--name",
        type=_interface_name,
        default=DEFAULT_INTERFACE,
        help="the name of the interface (default: %(default)s)",
    )
    add_log_level(types, "warning")
    _subcommand(types, "types", _run_types)


def _subcommand(
    parser: argparse.ArgumentParser, name: str, run: Callable[[argparse.Namespace], int]
) -> None:
    # What main() set for "rpc", the subparser's defaults replace: errors then name the
    # subcommand ("socketeer rpc types: ..."), and usage errors show its usage.
    parser.set_defaults(_rpc_run=run, _command=f"rpc {name}", _parser=parser)


def _interface_name(value: str) -> str:
    if not (value.isidentifier() and value.isascii()) or value in _NOT_TYPE_NAMES:
        raise argparse.ArgumentTypeError(
            f"expected a TypeScript identifier, such as API, got {value!r}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; return the exit status.

    Raises:
        CommandError: for a mistake in the arguments or a failure.
    """
    subcommand: Callable[[argparse.Namespace], int] = args._rpc_run
    return subcommand(args)


def _run_types(args: argparse.Namespace) -> int:
    """``rpc types``: print or write the declaration."""
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    _, app = load_app(args.app)
    if not isinstance(app, Routes):
        raise CommandError(
            f"{args.app} is not an RPC application (socketeer.rpc.RPC or Routes): "
            f"it is {_kind(app)}"
        )
    text = declaration(app, args.name, args.app)
    if args.output is None:
        print(text, end="")
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    return 0


def _kind(value: object) -> str:
    """What ``value`` is, in a few words."""
    if value is None:
        return "None"
    if isinstance(value, types.ModuleType):
        return f"the module {value.__name__}"
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    if isinstance(value, (types.FunctionType, types.MethodType)):
        return f"the function {value.__qualname__}"
    return f"a {type(value).__qualname__}"
