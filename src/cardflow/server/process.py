"""Tuning for the long-running ``cardflow serve`` process (not for apps run in tests)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import platform

# glibc's mallopt parameter: blocks at least this large get their own mapping.
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 1024 * 1024


def tune_for_serving() -> None:
    """Keep memory and pauses flat under large request bodies.

    - glibc raises its mmap threshold each time a large block is freed, after which
      megabyte-sized bodies come from heap arenas that fragment and are never given
      back: pin the threshold, so that each large body is its own mapping, returned
      to the system when freed (measured by bench/abuse.py).
    - Everything imported so far lives as long as the process: ``gc.freeze`` moves it
      out of the collector's sight, so full collections stop walking it (from ~100 ms
      to ~10 ms on a small machine)."""
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        name = ctypes.util.find_library("c")
        if name:
            ctypes.CDLL(name).mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
    gc.collect()
    gc.freeze()
