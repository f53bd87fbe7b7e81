"""The walking skeleton's water feed: a seeded rain pulse over a few water sensors.

Depth follows a linear reservoir: inflow from rain over the site's catchment, outflow
limited by its drainage. Kept deliberately small; ``simulators`` grows the full model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np

from gridwatch.registry import DeviceInfo


def water_messages(
    devices: list[DeviceInfo],
    rng: np.random.Generator,
    start: datetime,
    minutes: float,
    interval_s: float = 60.0,
    topic_root: str = "gw/v1",
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(topic, payload)`` in event-time order, one reading per device per step."""
    steps = int(minutes * 60 // interval_s)
    n = len(devices)
    depth = np.zeros(n)
    catchment = np.array([float(d.attrs.get("catchment_m2", 5000.0)) for d in devices])
    basin = np.array([float(d.attrs.get("basin_m2", 800.0)) for d in devices])
    drainage = np.array([float(d.attrs.get("drainage_mm_h", 30.0)) for d in devices])
    peak = rng.uniform(40, 90)  # mm/h at the storm's peak
    centre = steps * rng.uniform(0.3, 0.5)
    width = max(steps * 0.15, 1.0)
    dt_h = interval_s / 3600.0
    for step in range(steps):
        intensity = peak * float(np.exp(-0.5 * ((step - centre) / width) ** 2))
        inflow_cm = intensity * dt_h / 10.0 * catchment / basin
        outflow_cm = drainage * dt_h / 10.0 * catchment / basin * np.minimum(1.0, depth / 2.0 + 0.2)
        depth = np.maximum(0.0, depth + inflow_cm - outflow_cm)
        noisy = np.maximum(0.0, depth + rng.normal(0.0, 0.2, n))
        ts = start + timedelta(seconds=step * interval_s)
        stamp = ts.isoformat().replace("+00:00", "Z")
        for i, dev in enumerate(devices):
            payload = {
                "ts": stamp,
                "level_cm": round(float(noisy[i]), 2),
                "battery_v": 3.6,
                "rssi_dbm": -80.0,
                "seq": step,
            }
            yield (
                f"{topic_root}/water/{dev.device_id}",
                json.dumps(payload, separators=(",", ":"), sort_keys=True).encode(),
            )
