"""Declares the optional C speedups; everything else lives in pyproject.toml.

The extension is optional: when no C compiler is available, or when the build fails, the
package installs without it and falls back to its pure-Python twin. Set
``SOCKETEER_REQUIRE_SPEEDUPS=1`` to make a failed build an error (CI does).
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

REQUIRE = os.environ.get("SOCKETEER_REQUIRE_SPEEDUPS") == "1"


class optional_build_ext(build_ext):  # noqa: N801 - setuptools naming
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if REQUIRE:
                raise
            print(f"warning: socketeer C speedups not built: {exc}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE:
                raise
            print(f"warning: socketeer C speedups not built: {exc}")


setup(
    ext_modules=[
        Extension(
            "socketeer.protocol._speedups",
            sources=["src/socketeer/protocol/_speedups.c"],
            optional=not REQUIRE,
            extra_compile_args=["-O3"] if os.name == "posix" else [],
        )
    ],
    cmdclass={"build_ext": optional_build_ext},
)
