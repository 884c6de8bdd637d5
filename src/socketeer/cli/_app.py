"""The application a command names as ``MODULE:ATTR``: ``serve`` serves it, ``rpc types``
describes it.

:func:`app_spec` checks the argument (for argparse); :func:`load_app` imports the module
and finds the attribute, with one-line errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from types import ModuleType

from . import CommandError

__all__ = ["app_spec", "load_app"]

logger = logging.getLogger("socketeer.server")


def app_spec(value: str) -> str:
    """An argparse ``type``: ``MODULE:ATTR``, both dotted names.

    Raises:
        argparse.ArgumentTypeError: if ``value`` is not two dotted names around a colon.
    """
    module, colon, attr = value.partition(":")
    if not (colon and _dotted(module) and _dotted(attr)):
        raise argparse.ArgumentTypeError(
            f"expected a module and an attribute, such as app:handler or package.app:rpc, "
            f"got {value!r}"
        )
    return value


def _dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def load_app(spec: str) -> tuple[ModuleType, object]:
    """Import ``MODULE:ATTR``; return the module and the attribute (dots walk further).

    Puts the current directory first on the import path, as ``python -m`` does.

    Raises:
        CommandError: if the module cannot be imported, or has no such attribute.
    """
    name, _, attr = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise CommandError(
                f"cannot import {name}: no module named {exc.name!r} "
                f"in the current directory ({cwd}) or the Python path"
            ) from exc
        raise _import_failed(name, exc) from exc
    except Exception as exc:
        raise _import_failed(name, exc) from exc
    app: object = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError as exc:
            raise CommandError(f"module {name!r} has no attribute {attr!r}") from exc
    return module, app


def _import_failed(name: str, exc: Exception) -> CommandError:
    logger.debug("importing %s failed", name, exc_info=exc)
    return CommandError(
        f"cannot import {name}: {type(exc).__name__}: {exc} (--log-level debug shows where)"
    )
