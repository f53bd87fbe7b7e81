"""Bridge counters and latency summaries, exported as InfluxDB ``pipeline`` points."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gridwatch.influx import Point
from gridwatch.metrics import LatencyWindow


@dataclass
class BridgeMetrics:
    instance: str
    received: int = 0
    forwarded: int = 0
    records: int = 0
    duplicates: int = 0
    produce_errors: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    ack_latency: LatencyWindow = field(default_factory=LatencyWindow)
    produce_latency: LatencyWindow = field(default_factory=LatencyWindow)

    def dead_letter(self, reason: str) -> None:
        self.dead_letters[reason] += 1

    def snapshot(self) -> dict[str, float]:
        snap: dict[str, float] = {
            "received": self.received,
            "forwarded": self.forwarded,
            "records": self.records,
            "duplicates": self.duplicates,
            "produce_errors": self.produce_errors,
            "dead_lettered": sum(self.dead_letters.values()),
        }
        for name, window in (("ack_ms", self.ack_latency), ("produce_ms", self.produce_latency)):
            for key, value in window.percentiles().items():
                snap[f"{name}_{key}"] = value
        return snap

    def points(self, time_ms: int) -> list[Point]:
        tags = {"stage": "ingest", "instance": self.instance}
        points = [Point("pipeline", tags, self.snapshot(), time_ms)]
        points += [
            Point("pipeline", {**tags, "reason": reason}, {"dead_lettered": count}, time_ms)
            for reason, count in sorted(self.dead_letters.items())
        ]
        return points
