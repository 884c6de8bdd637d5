"""Time in the tests: one millisecond, scaled for slow machines.

Set ``SOCKETEER_TEST_TIMEOUT_FACTOR=10`` on a slow machine to make every wait ten times
longer. Waits are bounds, never expectations: no test checks a duration.
"""

from __future__ import annotations

import os

__all__ = ["MS"]

MS = 0.001 * float(os.environ.get("SOCKETEER_TEST_TIMEOUT_FACTOR", "1"))
"""One millisecond, scaled by ``SOCKETEER_TEST_TIMEOUT_FACTOR``."""
