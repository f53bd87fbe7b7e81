"""Per-device states of a batch: from table documents to arrays and back."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from gridwatch.contracts import ReadingBase

R = TypeVar("R", bound=ReadingBase)


@functools.cache
def _layout(cls: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """Field names of a state class and its default values (computed once)."""
    names = tuple(cls.field_names())
    proto = cls()
    return names, np.array([getattr(proto, k) for k in names], dtype=float)


def stack(
    cls: Any,
    part: str,
    devices: list[str],
    stored: Mapping[str, Mapping[str, Any] | None],
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Arrays (one row per device) of ``cls`` states stored under ``part``.

    A part is stored as a list of floats in the order of ``names`` (default: every
    field of ``cls``) — one list per device is far cheaper to convert than a dict per
    device. A device without a stored part, or with one of another length (the state
    schema changed), starts from the class defaults. The arrays are columns of one
    Fortran-ordered matrix: one allocation per part, not one per field."""
    fields, defaults = _layout(cls)
    stored_names = tuple(names) if names else fields
    mat = np.empty((len(devices), len(fields)), order="F")
    mat[:] = defaults
    have: list[int] = []
    lists: list[Any] = []
    for i, d in enumerate(devices):
        doc = (stored.get(d) or {}).get(part)
        if isinstance(doc, list) and len(doc) == len(stored_names):
            have.append(i)
            lists.append(doc)
    if have:
        values = np.array(lists, dtype=float)
        if names:
            mat[np.ix_(have, [fields.index(k) for k in stored_names])] = values
        else:
            mat[have] = values
    return {k: mat[:, j] for j, k in enumerate(fields)}


def rows(
    cls: Any, arrays: Mapping[str, np.ndarray], n: int, names: Sequence[str] | None = None
) -> list[list[float]]:
    """One list of floats per device (the table document of a part), ``stack``'s inverse."""
    if not n:
        return []
    keys = names or _layout(cls)[0]
    return np.column_stack([np.asarray(arrays[k], dtype=float) for k in keys]).tolist()


def field_of(cls: Any, part: Any, name: str) -> float:
    """One field of a stored part (NaN when absent)."""
    names = cls.field_names()
    if isinstance(part, list) and len(part) == len(names):
        return float(part[names.index(name)])
    return float("nan")


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
