"""Score a batch of bike-parking readings: QC, +30 min overflow forecast, hygiene.

Per metro-exit site the state holds the QC, the forecaster's and the incident's small
fixed records. The incident value is occupancy (bikes / capacity): a forecast of
P(bikes > capacity in 30 min) ≥ ``p_on`` raises a pre-alert; occupancy ≥ 1.0 held for
``min_duration_s`` opens a ``bike_overflow`` ticket, ≥ 1.3 escalates it; back under 0.9
for a quarter of an hour clears it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from gridwatch.contracts import (
    Alert,
    Assessment,
    BikeReading,
    Category,
    Forecast,
    QcFlag,
    Severity,
    incident_key,
)
from gridwatch.registry import Registry
from models import bike_forecast, qc
from streams import hygiene
from streams.batch_state import last_per_device, rows, stack

RULE_VERSION = "bike-hygiene-1"
PARTS = ("qc", "bike", "hyg")
STATE_TYPES: dict[str, Any] = {
    "qc": qc.QcState,
    "bike": bike_forecast.BikeState,
    "hyg": hygiene.HygieneState,
}
BIKE_HYGIENE = hygiene.HygieneParams(
    threshold=1.0,
    escalate_at=1.3,
    hysteresis=0.1,
    p_on=0.6,
    p_off=0.3,
    min_duration_s=300.0,
    clear_duration_s=900.0,
)


@dataclass
class BikeResult:
    states: dict[str, dict[str, Any]]
    assessments: list[Assessment]
    alerts: list[Alert]


class BikeScorer:
    def __init__(self, registry: Registry, params: hygiene.HygieneParams = BIKE_HYGIENE) -> None:
        self.registry = registry
        self.params = params
        self.qc_params = qc.params_for("bike")
        self.bike_params = bike_forecast.BikeParams()

    def score(
        self, readings: Sequence[BikeReading], stored: Mapping[str, Mapping[str, Any] | None]
    ) -> BikeResult:
        devices = sorted({r.device_id for r in readings})
        row = {d: i for i, d in enumerate(devices)}
        states = {part: stack(STATE_TYPES[part], part, devices, stored) for part in PARTS}
        idx = np.array([row[r.device_id] for r in readings], dtype=np.int64)
        ts = np.array([r.ts.timestamp() for r in readings])
        bikes = np.array([r.bikes for r in readings], dtype=float)
        capacity = np.array([r.capacity for r in readings], dtype=float)
        states["qc"], qc_out = qc.step_batch(states["qc"], idx, ts, bikes, self.qc_params)
        flag = qc.combine(qc_out["flag"], np.array([int(r.qc) for r in readings]))
        usable = (flag != QcFlag.FAIL) & (flag != QcFlag.MISSING)
        states["bike"], fc = bike_forecast.step_batch(
            states["bike"], idx, ts, np.where(usable, bikes, np.nan), capacity, self.bike_params
        )
        occupancy = bikes / capacity
        p = np.nan_to_num(fc["p_exceed"])
        states["hyg"], decisions = hygiene.step_batch(
            states["hyg"], idx, ts, occupancy, p, usable, self.params
        )
        cols = {part: rows(STATE_TYPES[part], states[part], len(devices)) for part in PARTS}
        out_states = {d: {part: cols[part][i] for part in PARTS} for i, d in enumerate(devices)}
        last = np.zeros(len(readings), dtype=bool)
        last[last_per_device(idx, ts, len(devices))] = True
        assessments, alerts = [], []
        for j, r in enumerate(readings):
            forecasts = []
            if last[j] and np.isfinite(fc["q50"][j]):
                forecasts = [
                    Forecast(
                        horizon_min=bike_forecast.HORIZON_MIN,
                        q10=float(fc["q10"][j]),
                        q50=float(fc["q50"][j]),
                        q90=float(fc["q90"][j]),
                        p_exceed={f"{r.capacity:.1f}": float(np.clip(p[j], 0, 1))},
                    )
                ]
            assessments.append(
                Assessment(
                    device_id=r.device_id,
                    kind="bike",
                    ts=r.ts,
                    grid_id=r.grid_id,
                    district_id=r.district_id,
                    value=float(r.bikes),
                    qc=QcFlag(int(flag[j])),
                    forecasts=forecasts,
                    risk=float(np.clip(p[j], 0.0, 1.0)),
                    model_version="bike-forecast-1",
                    detail={"occupancy": float(occupancy[j])},
                )
            )
            if decisions[j] != hygiene.NONE:
                alerts.append(self._alert(r, int(decisions[j]), float(p[j]), float(fc["q50"][j])))
        return BikeResult(out_states, assessments, alerts)

    def _alert(self, r: BikeReading, decision: int, p: float, q50: float) -> Alert:
        kind = hygiene.DECISION_KIND[decision]
        placement = self.registry.placement(r.device_id)
        site = placement.device.site or r.device_id
        key = incident_key(r.grid_id, Category.BIKE_OVERFLOW, site)
        occ = r.bikes / r.capacity
        severity = Severity.MAJOR if decision == hygiene.EMIT_ESCALATE else Severity.MINOR
        why = {
            "forecast": f"{site}: {q50:.0f} bikes expected in 30 min for {r.capacity} places "
            f"(P over = {p:.0%}), now {r.bikes}",
            "observed": f"{site}: {r.bikes} bikes for {r.capacity} places ({occ:.0%})",
            "clear": f"{site}: back to {r.bikes} bikes ({occ:.0%})",
            "recede": f"{site}: overflow forecast receded (P = {p:.0%})",
        }[kind]
        return Alert(
            alert_id=f"{key}:{kind}:{int(r.ts.timestamp() * 1000)}:{decision}",
            incident_key=key,
            kind=kind,  # type: ignore[arg-type]
            category=Category.BIKE_OVERFLOW,
            severity=severity,
            grid_id=r.grid_id,
            district_id=r.district_id,
            site=site,
            ts=r.ts,
            probability=float(np.clip(p, 0.0, 1.0)),
            expected_at=r.ts + timedelta(minutes=bike_forecast.HORIZON_MIN)
            if kind == "forecast"
            else None,
            lon=placement.device.lon,
            lat=placement.device.lat,
            why=why[:500],
            evidence={"device_ids": [r.device_id], "bikes": r.bikes, "capacity": r.capacity},
            rule_version=RULE_VERSION,
        )
