"""Exponential backoff for the loops that wait out an unavailable service (InfluxDB,
the ticket store, the broker): ``next()`` is the wait before the next try, doubling up
to ``max_s``; ``reset()`` after a success."""

from __future__ import annotations


class Backoff:
    def __init__(self, first_s: float, max_s: float) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {first_s}, {max_s}")
        self.first_s = first_s
        self.max_s = max_s
        self._next = first_s

    def next(self) -> float:
        wait = self._next
        self._next = min(wait * 2, self.max_s)
        return wait

    def reset(self) -> None:
        self._next = self.first_s
