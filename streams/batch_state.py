"""Per-device states of a batch: from table documents to arrays and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


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
