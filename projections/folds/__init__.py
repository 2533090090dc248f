"""Pure folds: events -> read-model rows. No I/O; the store writes what they return.

One module per read model: :mod:`.workflows`, :mod:`.steps`, :mod:`.locks`,
:mod:`.agents`, :mod:`.archive` (events, dead letters, counts) and
:mod:`.metrics` (additive rollups); :mod:`.batch` folds a whole batch.
"""
