"""Process-wide tuning that agentlog's service processes apply at start.

Python's cyclic garbage collector runs a generation-0 collection every 700
container allocations (net), and every tenth of those also walks generation
1. A service that decodes thousands of events per batch allocates several
container objects per event, so it collects many times per batch, each time
walking the batch's objects that are still alive: measured in the projector,
a quarter to a third of its CPU during a catch-up (docs/projections.md). The
engine creates almost no reference cycles, so collecting every 100,000
allocations costs a little memory and saves that CPU.
"""

from __future__ import annotations

import gc


def raise_gc_threshold(threshold: int) -> None:
    """Collect generation 0 after ``threshold`` allocations, unless it already waits longer.

    ``threshold`` 0 (or below Python's current setting) changes nothing: a
    process that tuned its collector itself keeps its choice.
    """
    first, second, third = gc.get_threshold()
    if threshold > first:
        gc.set_threshold(threshold, second, third)
