"""Masking (RFC 6455 section 5.3) and UTF-8 validation, the two byte loops of the hot path.

Both are small functions with one signature each, so that the optional C extension
(``_speedups.c``) can replace them. The pure-Python versions here are the reference: they
avoid per-byte loops by working on whole integers, and stay correct on their own when the
extension is not built. Set ``SOCKETEER_NO_SPEEDUPS=1`` to use them even when it is.
"""

from __future__ import annotations

import os
import sys

__all__ = ["apply_mask", "new_mask", "SPEEDUPS"]


def _py_apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated; masking and unmasking are the same.

    Args:
        data: the payload.
        mask: the masking key, exactly 4 bytes.

    Returns:
        The masked (or unmasked) payload, as a new ``bytes`` object.

    Raises:
        ValueError: if ``mask`` is not 4 bytes long.
    """
    if len(mask) != 4:
        raise ValueError("mask must contain 4 bytes")
    size = len(data)
    if size == 0:
        return b""
    # One big-integer XOR instead of a loop over bytes: linear, and done in C by CPython.
    repeated = mask * ((size + 3) >> 2)
    if len(repeated) != size:
        repeated = repeated[:size]
    key = int.from_bytes(repeated, sys.byteorder)
    value = int.from_bytes(data, sys.byteorder)
    return (value ^ key).to_bytes(size, sys.byteorder)


apply_mask = _py_apply_mask
SPEEDUPS = False
"""Whether the C extension provides :func:`apply_mask`."""

if os.environ.get("SOCKETEER_NO_SPEEDUPS") != "1":  # pragma: no branch
    try:
        from ._speedups import apply_mask
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:
        SPEEDUPS = True


# RFC 6455 section 5.3: "The masking key is a 32-bit value chosen at random by the client.
# [...] the masking key MUST be derived from a strong source of entropy". Reading urandom
# 4 bytes at a time costs one system call per frame; reading it in blocks does not.
_POOL_SIZE = 4096
_pool = b""
_pool_pos = _POOL_SIZE


def new_mask() -> bytes:
    """Return a fresh, unpredictable 4-byte masking key (from :func:`os.urandom`)."""
    global _pool, _pool_pos
    pos = _pool_pos
    if pos >= len(_pool):
        _pool = os.urandom(_POOL_SIZE)
        pos = 0
    _pool_pos = pos + 4
    return _pool[pos : pos + 4]
