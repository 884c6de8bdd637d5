"""``socketeer demo``: serve the demos in the browser (:mod:`socketeer.demo`)."""

from __future__ import annotations

import argparse

from ..demo import DESCRIPTION, add_arguments, run_parsed

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "serve the demos in the browser"
"""The command's line in the list of commands."""


def run(args: argparse.Namespace) -> int:
    """Serve the demos until Ctrl-C; return the exit status."""
    return run_parsed(args)
