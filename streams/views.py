"""Every worker's view of every rain gauge (``gw.readings.rain``) and of the newest
water and camera assessments (``gw.assessments``).

The water job needs the rain of a site's gauge, and gauges live on other partitions
than the sites they serve. Each worker therefore reads *all* partitions of the rain
topic with its own consumer (no consumer group, nothing committed) and folds the
readings into per-gauge rain states in memory. At start it replays the last
``replay_hours`` of rain records, which covers every window the forecaster uses
(one hour) with room to spare. (A Faust GlobalTable did this job first; its recovery
hung with two workers against Tansu.) The fusion of a flood site with its neighbours
and the cameras watching it needs the same across partitions: ``EvidenceView`` keeps
the newest depth of every water sensor and the water cover every camera sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from gridwatch.contracts import Assessment, QcFlag, RainReading, ReadingBatch, parse_record
from gridwatch.errors import ContractError
from gridwatch.kafka import partitions_of, readings_topic
from gridwatch.settings import KafkaSettings
from models.flood_state import RAIN_FIELDS, RainHistory
from streams.rain_scoring import usable_rain
from streams.water_scoring import rain_state_update

log = logging.getLogger(__name__)


class TopicView:
    """Every partition of one topic, read by this worker's own consumer (no group,
    nothing committed) from ``replay_hours`` back, folded by ``apply`` into memory."""

    topic: str = ""

    def __init__(self, settings: KafkaSettings, replay_hours: float = 6.0) -> None:
        self.settings = settings
        self.replay_hours = replay_hours
        self.records = 0
        self.ready = asyncio.Event()

    def apply(self, raw: bytes) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        topic = self.topic
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )
        await consumer.start()
        try:
            parts: list[TopicPartition] = []
            while not parts:
                parts = await partitions_of(consumer, topic)
                if not parts:
                    await asyncio.sleep(1.0)  # topic not created yet
            consumer.assign(parts)
            since_ms = int((time.time() - self.replay_hours * 3600) * 1000)
            offsets = await consumer.offsets_for_times({tp: since_ms for tp in parts})
            for tp in parts:
                found = offsets.get(tp)
                if found is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, found.offset)
            end = await consumer.end_offsets(parts)
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self.apply(record.value)
                        self.records += 1
                if not self.ready.is_set():
                    positions = [await consumer.position(tp) for tp in parts]
                    if all(pos >= end[tp] for pos, tp in zip(positions, parts, strict=True)):
                        self.ready.set()
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await consumer.stop()


class RainView(TopicView):
    """Every gauge's rain state: the newest (``states``, ``get``) and, for the
    ``replay_hours`` before it, as it stood after each reading (``at``): the water job
    forecasts a site with the rain that had fallen by its reading's time, however far
    this view has read ahead of the water readings (a replay, a backlog)."""

    def __init__(self, settings: KafkaSettings, replay_hours: float = 6.0) -> None:
        super().__init__(settings, replay_hours)
        self.topic = readings_topic(settings, "rain")
        self.states: dict[str, dict[str, float]] = {}
        self.history = RainHistory(keep_s=replay_hours * 3600.0, fields=RAIN_FIELDS)
        self.newest_ts: float | None = None  # event time of the newest rain reading

    def get(self, gauge: str) -> Mapping[str, float] | None:
        return self.states.get(gauge)

    def at(self, gauge: str, ts: float) -> Mapping[str, float] | None:
        """The gauge's rain state at event time ``ts`` (None before its first reading)."""
        return self.history.at(gauge, ts)

    def apply(self, raw: bytes) -> None:
        try:
            batch = parse_record(ReadingBatch, raw)
        except ContractError:
            return  # the rain agent dead-letters it; the view just skips it
        readings = [r for r in batch.readings if isinstance(r, RainReading)]
        if not readings:
            return
        ids = [r.device_id for r in readings]
        ts = np.array([r.ts.timestamp() for r in readings])
        mm, ih = usable_rain(readings)
        # one reading time at a time, so the history holds the state after each reading
        for t in np.unique(ts):
            sel = np.flatnonzero(ts == t)
            new = rain_state_update(self.states, [ids[i] for i in sel], ts[sel], mm[sel], ih[sel])
            self.states.update(new)
            for gauge, state in new.items():
                if state["t_rain"] == t:  # accepted (not a replayed or older reading)
                    self.history.record(gauge, float(t), state)
        self.newest_ts = max(self.newest_ts or float("-inf"), float(ts.max()))


class EvidenceView(TopicView):
    """The newest water and camera assessment of every device (``gw.assessments``):
    what the fusion of one site needs from its neighbours and the cameras watching it,
    whichever worker scored them."""

    def __init__(self, settings: KafkaSettings, replay_hours: float = 1.0) -> None:
        super().__init__(settings, replay_hours)
        self.topic = settings.topic("assessments")
        # device → (event time s, observed depth cm | camera water cover 0..1)
        self.latest: dict[str, tuple[float, float]] = {}

    def apply(self, raw: bytes) -> None:
        try:
            a = parse_record(Assessment, raw)
        except ContractError:
            return
        if (
            a.kind == "water"
            and a.value is not None
            and a.qc in (QcFlag.PASS, QcFlag.NOT_EVALUATED)
        ):
            value = float(a.value)
        elif a.kind == "camera" and "water_cover" in a.detail:
            value = float(a.detail["water_cover"])
        else:
            return
        ts = a.ts.timestamp()
        if ts >= self.latest.get(a.device_id, (float("-inf"), 0.0))[0]:
            self.latest[a.device_id] = (ts, value)
