"""Small fixed-size scorer state shared by every step function.

A state is a frozen dataclass of floats. ``to_dict``/``from_dict`` let a Faust table hold
it as JSON; ``stack``/``unstack`` turn many states into a dict of numpy arrays (one row per
device) for the vectorised kernels, and ``rounds`` splits a micro-batch in which a device
appears several times into rounds that keep per-device order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Self, TypeVar

import numpy as np

from models.errors import StateError

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class StepState:
    """Base of every per-device state: all fields are floats with defaults."""

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        extra = set(data) - names
        if missing or extra:
            raise StateError(
                f"{cls.__name__}: cannot restore state (missing {sorted(missing)}, "
                f"unexpected {sorted(extra)})"
            )
        try:
            return cls(**{k: float(data[k]) for k in names})
        except (TypeError, ValueError) as exc:
            raise StateError(f"{cls.__name__}: non-numeric state value: {exc}") from exc

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def initial_arrays(cls, n: int) -> Arrays:
        proto = cls()
        return {k: np.full(n, getattr(proto, k), dtype=float) for k in cls.field_names()}

    @classmethod
    def stack(cls, states: Sequence[StepState]) -> Arrays:
        names = cls.field_names()
        return {k: np.array([getattr(s, k) for s in states], dtype=float) for k in names}

    @classmethod
    def unstack(cls, arrays: Mapping[str, np.ndarray]) -> list[Self]:
        names = cls.field_names()
        n = len(arrays[names[0]])
        cols = [arrays[k].tolist() for k in names]
        return [cls(**dict(zip(names, (c[i] for c in cols), strict=True))) for i in range(n)]

    def equals(self, other: StepState) -> bool:
        """Field-wise equality that treats NaN as equal to NaN."""
        a, b = self.to_dict(), other.to_dict()
        return a.keys() == b.keys() and all(
            (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
        )


S = TypeVar("S", bound=StepState)


def take(arrays: Mapping[str, np.ndarray], index: np.ndarray) -> Arrays:
    return {k: v[index] for k, v in arrays.items()}


def put(
    arrays: Mapping[str, np.ndarray], index: np.ndarray, rows: Mapping[str, np.ndarray]
) -> Arrays:
    out = {k: v.copy() for k, v in arrays.items()}
    for k, v in rows.items():
        out[k][index] = v
    return out


def rounds(device_index: np.ndarray) -> list[np.ndarray]:
    """Positions of a micro-batch grouped by how often the device was seen before.

    Round 0 holds each device's first reading, round 1 its second, ... so running the
    kernel round by round equals a loop of single steps in arrival order.
    """
    device_index = np.asarray(device_index, dtype=np.int64)
    if device_index.size == 0:
        return []
    order = np.argsort(device_index, kind="stable")
    sorted_idx = device_index[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_idx)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, sorted_idx.size]))
    rank = np.empty_like(order)
    rank[order] = np.arange(sorted_idx.size) - group_start
    return [np.flatnonzero(rank == r) for r in range(int(rank.max()) + 1)]


def as_float(x: Any, n: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if n is not None and arr.ndim == 0:
        arr = np.full(n, float(arr))
    return arr


def safe_div(num: np.ndarray, den: np.ndarray, floor: float = 1e-9) -> np.ndarray:
    """num / max(den, floor): a spread of zero never divides by zero."""
    return num / np.maximum(den, floor)


def run_rounds(
    kernel: Any,
    states: Mapping[str, np.ndarray],
    device_index: np.ndarray,
    inputs: Mapping[str, np.ndarray],
    params: Any,
) -> tuple[Arrays, dict[str, np.ndarray]]:
    """Apply ``kernel(rows, inputs, params) -> (rows, outputs)`` to a micro-batch.

    ``states`` holds one row per device; reading ``j`` belongs to row ``device_index[j]``.
    Devices appearing several times are handled in arrival order (see ``rounds``).
    """
    device_index = np.asarray(device_index, dtype=np.int64)
    cur = {k: np.asarray(v, dtype=float).copy() for k, v in states.items()}
    outputs: dict[str, np.ndarray] = {}
    for pos in rounds(device_index):
        rows = device_index[pos]
        new_rows, out = kernel(
            take(cur, rows), {k: np.asarray(v)[pos] for k, v in inputs.items()}, params
        )
        for k, v in new_rows.items():
            cur[k][rows] = v
        for k, v in out.items():
            if k not in outputs:
                outputs[k] = np.zeros(device_index.size, dtype=np.asarray(v).dtype)
            outputs[k][pos] = v
    return cur, outputs
