"""Read a simulator run directory (JSONL messages + city) into per-site minute series.

Input layout (written by the simulators, read here as plain files — no import of
``simulators``): ``messages.jsonl`` with ``{"at", "topic": "gw/v1/{kind}/{id}",
"payload": {...}}`` per line, and ``city/devices.json`` (the registry's device list).
Water sites get the rain of their nearest gauge. Malformed lines and payloads are
counted and skipped (they are the simulator's injected faults); depths are gridded by
publish minute and QC'd (``models.qc``), failed or stuck readings become gaps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from models import qc
from models.errors import ModelError
from models.flood_forecast import Sites
from models.storms import StormRun


@dataclass(frozen=True)
class RunHistory:
    run: StormRun
    site_ids: list[str]
    skipped: int


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_run(directory: Path) -> RunHistory:
    try:
        devices = json.loads((directory / "city" / "devices.json").read_text(encoding="utf-8"))
        lines = (directory / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read simulator run {directory}: {exc}") from exc
    water = [d for d in devices if d.get("kind") == "water"]
    gauges = [d for d in devices if d.get("kind") == "rain"]
    if not water or not gauges:
        raise ModelError(f"{directory}: the run has no water sites or no rain gauges")
    w_idx = {d["device_id"]: i for i, d in enumerate(water)}
    g_idx = {d["device_id"]: i for i, d in enumerate(gauges)}
    rows: list[tuple[int, int, float, float]] = []  # (kind 0 water / 1 rain, idx, ts, value)
    skipped = 0
    for line in lines:
        if '"payload"' not in line:
            skipped += 1
            continue
        try:
            msg = json.loads(line)
            parts = msg["topic"].split("/")
            kind, dev = parts[2], parts[3]
            p = msg["payload"]
            ts = _epoch(msg["at"])  # publish time: device clocks may be skewed (faults)
            if kind == "water" and dev in w_idx:
                rows.append((0, w_idx[dev], ts, float(p["level_cm"])))
            elif kind == "rain" and dev in g_idx:
                mm = p.get("rain_mm")
                rows.append(
                    (
                        1,
                        g_idx[dev],
                        ts,
                        float(mm) if mm is not None else float(p["intensity_mm_h"]) / 60.0,
                    )
                )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            skipped += 1
    if not rows:
        raise ModelError(f"{directory}: no usable water or rain readings")
    arr = np.array(rows, dtype=float)
    t0 = np.floor(arr[:, 2].min() / 60.0) * 60.0
    minutes = int((arr[:, 2].max() - t0) // 60) + 1
    depth = np.full((minutes, len(water)), np.nan)
    rain_g = np.zeros((minutes, len(gauges)))
    m = ((arr[:, 2] - t0) // 60).astype(np.int64)
    ok_m = (m >= 0) & (m < minutes) & np.isfinite(arr[:, 3])
    wmask = ok_m & (arr[:, 0] == 0)
    depth[m[wmask], arr[wmask, 1].astype(np.int64)] = arr[wmask, 3]
    rmask = ok_m & (arr[:, 0] == 1)
    np.add.at(rain_g, (m[rmask], arr[rmask, 1].astype(np.int64)), np.maximum(arr[rmask, 3], 0.0))
    wl = np.array([[d["lon"], d["lat"]] for d in water])
    gl = np.array([[d["lon"], d["lat"]] for d in gauges])
    nearest = np.argmin(((wl[:, None, :] - gl[None, :, :]) ** 2).sum(-1), axis=1)
    sites = Sites.from_attrs([d.get("attrs", {}) for d in water])
    # QC each site's minute series; failed readings become gaps
    qstate = qc.QcState.initial_arrays(len(water))
    depth_clean = depth.copy()
    site_idx = np.arange(len(water))
    for k in range(minutes):
        qstate, out = qc.step_batch(
            qstate, site_idx, np.full(len(water), t0 + 60.0 * k), depth[k], qc.QcParams()
        )
        depth_clean[k, out["flag"] >= qc.FAIL] = np.nan
        depth_clean[k, (out["bits"] & qc.TEST_BITS["flat_line"]) > 0] = np.nan
    run = StormRun(
        t0=t0,
        ts=t0 + 60.0 * np.arange(minutes),
        rain_mm=rain_g[:, nearest],
        depth_obs=depth_clean,
        depth_true=depth_clean,
        sites=sites,
    )
    return RunHistory(run, [d["device_id"] for d in water], skipped)
