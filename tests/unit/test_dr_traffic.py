"""The drill's acknowledgement file, as the SIGKILLed generator leaves it."""

from __future__ import annotations

from tools.dr_traffic import parse_acks


def test_first_acknowledgement_per_event_and_the_last_count_sent() -> None:
    lines = [
        "S 2\n",
        "A 10.500000 predictions p1\n",
        "A 10.500000 predictions p2\n",
        "S 3\n",
        "A 11.000000 outcomes p1\n",
        "A 12.000000 predictions p1\n",  # a duplicate's acknowledgement: the first one counts
        "S 4\n",
        "A 13.0000",  # cut by the SIGKILL
    ]
    acks, sent = parse_acks(lines)
    assert acks == {
        ("predictions", "p1"): 10.5,
        ("predictions", "p2"): 10.5,
        ("outcomes", "p1"): 11.0,
    }
    assert sent == 4
