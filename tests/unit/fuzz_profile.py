"""Hypothesis settings shared by the fuzz property tests (`test_fuzz_*.py`).

Inside `make test` each property runs its own small number of examples, a few seconds in all;
`make fuzz` sets `RUNWAY_FUZZ_EXAMPLES` and the same properties run that many examples each.
One module instead of a profile in conftest.py: `--hypothesis-profile` needs the profile
registered before collection, and settings given on a test override a profile's anyway.
The deadline is off in both: a shared two-core machine makes per-example timings noise.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, currently_in_test_context, event, note, settings

FUZZ_EXAMPLES_ENV = "RUNWAY_FUZZ_EXAMPLES"


def fuzz_settings(examples: int) -> settings:
    """`examples` per property in `make test`; RUNWAY_FUZZ_EXAMPLES of them under `make fuzz`."""
    override = os.environ.get(FUZZ_EXAMPLES_ENV)
    return settings(
        max_examples=int(override) if override else examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


def say(text: str) -> None:
    """Hypothesis's `note` (printed with a failing example) where a property runs, nothing in a
    plain test. Hypothesis leaves the arguments blank in its report under pytest here, so the
    properties say their inputs themselves."""
    if currently_in_test_context():
        note(text)


def tally(what: str) -> None:
    """Hypothesis's `event` (the share of examples that did `what`, in the statistics)."""
    if currently_in_test_context():
        event(what)
