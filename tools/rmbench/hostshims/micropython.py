"""CPython stand-in for MicroPython's `micropython` module, so lib/rmclaim imports on the host.

Only what device code uses: `const` (identity) and no-op decorators. Put this folder on
PYTHONPATH (rmbench.micropython.cpython() does) when running device code under CPython. It ships
with the rmbench package, not with the tests: rmbench itself runs device code on the host
(rmbench.profiles.family_of reads machine strings with the device library's chip table).
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def const(value: T) -> T:
    return value


def native(func: T) -> T:
    return func


def viper(func: T) -> T:
    return func


def opt_level(level: int | None = None) -> int:
    del level
    return 0
