"""The stack's errors: each carries one sentence a person can act on."""

from __future__ import annotations


class StackError(Exception):
    """A service of the local stack could not be started, stopped or reached."""

    def __init__(self, sentence: str, log_tail: str = "") -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.log_tail = log_tail

    def __str__(self) -> str:
        if not self.log_tail:
            return self.sentence
        return f"{self.sentence}\n--- log tail ---\n{self.log_tail}"


class PrerequisiteMissing(StackError):
    """A program the stack needs is not installed, or a port is taken by something else."""


class TopicMismatch(Exception):
    """An existing topic has a partition count other than the configured one."""

    def __init__(self, topic: str, expected: int, actual: int) -> None:
        super().__init__(
            f"topic {topic!r} exists with {actual} partitions, but {expected} are configured; "
            "delete it or set RUNWAY_PARTITIONS to match."
        )
        self.topic = topic
        self.expected = expected
        self.actual = actual
