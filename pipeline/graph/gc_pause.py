"""Pausing Python's cyclic garbage collector around bulk object creation."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small objects are made.

    Quantum graphs are made of tuples and lists with no reference cycles; letting the
    collector rescan a growing heap again and again makes building and loading them
    superlinear in the number of quanta. The previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
