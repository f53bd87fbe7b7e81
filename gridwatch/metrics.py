"""Small measurement helpers shared by the stages."""

from __future__ import annotations

import numpy as np


class LatencyWindow:
    """The last ``size`` samples (ms) in a fixed ring, for percentiles."""

    def __init__(self, size: int = 4096) -> None:
        self._buf = np.zeros(size)
        self._n = 0

    def add(self, value_ms: float) -> None:
        self._buf[self._n % len(self._buf)] = value_ms
        self._n += 1

    def percentiles(self, qs: tuple[float, ...] = (50, 99)) -> dict[str, float]:
        count = min(self._n, len(self._buf))
        if count == 0:
            return {}
        values = np.percentile(self._buf[:count], qs)
        return {f"p{int(q)}": float(v) for q, v in zip(qs, values, strict=True)}
