"""RainView folds rain batches into each gauge's newest state and keeps, per reading,
the state as it stood then (``at``), which is what the water job reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridwatch.contracts import QcFlag, RainReading, ReadingBatch
from gridwatch.settings import KafkaSettings
from streams.views import RainView
from streams.water_scoring import RAIN_FIELDS, rain_state_update

T0 = datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


def _reading(gauge: str, minute: int, mm: float, qc: QcFlag = QcFlag.PASS) -> RainReading:
    ts = T0 + timedelta(minutes=minute)
    return RainReading(
        device_id=gauge,
        ts=ts,
        received_at=ts,
        grid_id="D01-S01-G01",
        district_id="D01",
        rain_mm=mm,
        qc=qc,
    )


def _batch(readings: list[RainReading]) -> bytes:
    return ReadingBatch(kind="rain", readings=readings, packed_at=T0).model_dump_json().encode()


def test_history_holds_each_reading_of_a_batch_and_the_newest_state_is_unchanged() -> None:
    view = RainView(KafkaSettings())
    minutes = range(30)
    rain = {m: (3.0 if 10 <= m < 20 else 0.0) for m in minutes}
    readings = [_reading(g, m, rain[m]) for m in minutes for g in ("rg-a", "rg-b")]
    # one batch spanning half an hour of event time (a replay faster than real time)
    view.apply(_batch(readings))
    ts = np.array([r.ts.timestamp() for r in readings])
    mm = np.array([r.rain_mm for r in readings], dtype=float)
    ids = [r.device_id for r in readings]
    at_once = rain_state_update({}, ids, ts, mm, np.full(len(ids), np.nan))
    for g in ("rg-a", "rg-b"):
        assert all(view.states[g][k] == pytest.approx(at_once[g][k]) for k in RAIN_FIELDS)
        assert view.get(g) is view.states[g]
    # as it stood at minute 12: three readings of rain, none of what fell afterwards
    then = view.at("rg-a", (T0 + timedelta(minutes=12, seconds=30)).timestamp())
    assert then is not None
    assert then["r0"] + then["r1"] + then["r2"] == pytest.approx(9.0)
    assert then["t_rain"] == (T0 + timedelta(minutes=12)).timestamp()
    assert view.at("rg-a", (T0 - timedelta(minutes=1)).timestamp()) is None


def test_replayed_and_failed_readings_change_no_history() -> None:
    view = RainView(KafkaSettings())
    view.apply(_batch([_reading("rg-a", m, 1.0) for m in range(10)]))
    before = view.at("rg-a", (T0 + timedelta(minutes=5)).timestamp())
    n = len(view.history)
    # a redelivered old batch, and a spike QC failed, add nothing
    view.apply(_batch([_reading("rg-a", m, 50.0) for m in range(3, 6)]))
    view.apply(_batch([_reading("rg-a", 10, 3000.0, QcFlag.FAIL)]))
    assert len(view.history) == n
    assert view.at("rg-a", (T0 + timedelta(minutes=5)).timestamp()) == before
    assert view.states["rg-a"]["t_rain"] == (T0 + timedelta(minutes=9)).timestamp()
