"""The command line: ``python -m socketeer demo [--host HOST] [--port PORT]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command given in ``argv`` (``sys.argv[1:]`` by default); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m socketeer",
        description="WebSockets for Python, from the wire to the browser.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    demo_parser = commands.add_parser(
        "demo", help="serve the demos in the browser", description=demo.DESCRIPTION
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(run=demo.run_parsed)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
