"""Per-device states of a batch: from table documents to arrays and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from gridwatch.contracts import ReadingBase

R = TypeVar("R", bound=ReadingBase)


def stack(
    cls: Any, part: str, devices: list[str], stored: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, np.ndarray]:
    """Arrays (one row per device) of ``cls`` states stored under ``part``; a device
    without a stored state starts from the class defaults."""
    arrays: dict[str, np.ndarray] = cls.initial_arrays(len(devices))
    for i, d in enumerate(devices):
        doc = (stored.get(d) or {}).get(part)
        if doc:
            for k, v in doc.items():
                if k in arrays:
                    arrays[k][i] = float(v)
    return arrays


def rows(arrays: Mapping[str, np.ndarray], n: int) -> list[dict[str, float]]:
    """One plain dict per device (JSON for the table), built column-wise."""
    keys = list(arrays)
    columns = [np.asarray(arrays[k], dtype=float).tolist() for k in keys]
    return (
        [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)] if n else []
    )


def last_per_device(idx: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    """Index of each device's newest reading in the batch (rows 0..n-1)."""
    order = np.lexsort((ts, idx))
    last = np.zeros(n, dtype=np.int64)
    last[idx[order]] = order
    return last


SEEN = "_ts"  # newest reading time (epoch s) a device's state has taken in


def fresh(readings: Sequence[R], stored: Mapping[str, Mapping[str, Any] | None]) -> list[R]:
    """Readings newer than what each device's stored state has already taken in.

    A redelivered Kafka event (a worker killed before its ack, a rebalance) finds the
    table already updated from the changelog; scoring it again would count its readings
    twice. Such readings are still stored (InfluxDB overwrites the same point) but not
    scored; so is a reading that arrives after a newer one of its device.
    """
    seen: dict[str, float] = {}
    out = []
    for r in readings:
        d = r.device_id
        if d not in seen:
            seen[d] = float((stored.get(d) or {}).get(SEEN, float("-inf")))
        ts = r.ts.timestamp()
        if ts > seen[d]:
            seen[d] = ts
            out.append(r)
    return out


def stamp(states: dict[str, dict[str, Any]], readings: Sequence[Any]) -> None:
    """Record in each new state the newest reading it took in."""
    for r in readings:
        state = states.get(r.device_id)
        if state is not None:
            state[SEEN] = max(float(state.get(SEEN, float("-inf"))), r.ts.timestamp())
