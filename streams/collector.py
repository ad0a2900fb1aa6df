"""The garbage collector's pace in a worker.

CPython runs a collection of its youngest generation every 700 container allocations, and
older generations after ten of those. The join allocates several containers an event (decoded
events, state records, index entries, joined rows), so at the default a worker ran hundreds of
collections a second, and every full one walked all it held: the transactions' decoded values,
the batch view's buffered rows. Measured in-process over 300,000 events (the join processor
alone): 1.09 of 5.25 CPU-seconds in collections at the default, 0.30-0.37 at 50,000. What the
worker frees goes by reference counting; a higher threshold only reclaims reference cycles,
which it hardly makes, a little later.
"""

from __future__ import annotations

import gc


def pace(gen0_threshold: int) -> None:
    """Collect the youngest generation every `gen0_threshold` allocations (0: CPython's pace)."""
    if gen0_threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(gen0_threshold, older, oldest)
