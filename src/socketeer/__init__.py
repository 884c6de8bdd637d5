"""socketeer: WebSockets for Python, from the wire to the browser."""

from __future__ import annotations

from .exceptions import *  # noqa: F403
from .exceptions import __all__ as _exceptions_all
from .version import __version__ as __version__

__all__ = [*_exceptions_all]
