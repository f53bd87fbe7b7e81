"""Score a batch of water readings: QC, anomaly, flood forecast, fusion, hygiene.

The thin Faust agent (``streams/water_job.py``) hands this a ``ReadingBatch`` and the
stored per-device states; everything here is plain numpy over the batch (models/ does
the maths). A batch may hold several readings of one device; they are processed in
rounds in which every device appears once, so per-device order is kept and each round
is one vectorised call.

Fusion: the forecast probability of a site is combined with the independent modalities
that can confirm it — its rain gauge, the observed depth at neighbouring sites and the
water cover seen by cameras on its road — and its quality flag into the incident
confidence that alert hygiene sees (``fuse``). A lone questionable sensor in dry weather
never opens an incident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from gridwatch.contracts import (
    Alert,
    AlertKind,
    Assessment,
    Category,
    Forecast,
    QcFlag,
    Severity,
    WaterReading,
    incident_key,
)
from gridwatch.registry import Registry
from models import detectors, flood_state, qc
from models.flood_forecast import ReservoirForecaster, Sites
from streams import hygiene
from streams.alerts import device_fault_alert
from streams.batch_state import last_per_device, rows, stack

# make_dataclass types are opaque to mypy
FloodState: Any = flood_state.FloodState
DetectorState: Any = detectors.DetectorState
DEPTH_FIELDS = flood_state.DEPTH_FIELDS
RAIN_FIELDS = flood_state.RAIN_FIELDS
# (gauge, event time) → the gauge's rain state as it stood then, or None
RainAt = Callable[[str, float], Mapping[str, float] | None]
RULE_VERSION = "water-hygiene-1"
PARTS = ("qc", "det", "flood", "hyg", "maint")
# the flood part stores only the depth fields; the rain fields come from the gauge
STORED_FIELDS = {"flood": DEPTH_FIELDS}
STATE_TYPES: dict[str, Any] = {
    "qc": qc.QcState,
    "det": DetectorState,
    "flood": FloodState,
    "hyg": hygiene.HygieneState,
    "maint": hygiene.HygieneState,
}
# A sensor fault (QC failed, or a flat line above the dry level) that persists for 10
# minutes opens a device_fault ticket; 30 minutes of good readings clear it.
MAINTENANCE = hygiene.HygieneParams(
    threshold=0.5,
    escalate_at=2.0,
    hysteresis=0.0,
    p_on=2.0,
    p_off=-1.0,
    min_duration_s=600.0,
    clear_duration_s=1800.0,
)


@dataclass(frozen=True)
class WaterParams:
    alert_cm: float = 7.6
    impassable_cm: float = 15.0
    horizon_min: int = 30  # the forecast horizon that drives pre-alerts
    heavy_rain_mm_h: float = 10.0
    dry_after_min: float = 180.0  # no rain for this long: standing water is implausible
    neighbour_m: float = 600.0  # water sensors this close are a site's neighbours
    camera_m: float = 250.0  # cameras this close see the site's road
    camera_cover_full: float = 0.25  # a quarter of the road under water: full agreement
    evidence_max_age_s: float = 900.0
    evidence_max_ahead_s: float = 60.0  # devices' clocks differ by up to a reading
    hygiene: hygiene.HygieneParams = field(default_factory=hygiene.HygieneParams)


@dataclass
class WaterResult:
    states: dict[str, dict[str, Any]]
    assessments: list[Assessment]
    alerts: list[Alert]


class WaterScorer:
    def __init__(
        self, registry: Registry, forecaster: Any = None, params: WaterParams | None = None
    ):
        self.registry = registry
        self.params = params or WaterParams()
        self.forecaster = forecaster or ReservoirForecaster()
        self.qc_params = qc.params_for("water")
        self.det_params = detectors.DetectorParams()
        self.gauge_of = nearest_gauges(registry)
        self.neighbours = nearby(registry, "water", "water", self.params.neighbour_m)
        self.cameras = nearby(registry, "water", "camera", self.params.camera_m)
        self.attrs = {
            p.device.device_id: dict(p.device.attrs) for p in registry.devices_of("water")
        }

    def score(
        self,
        readings: Sequence[WaterReading],
        stored: Mapping[str, Mapping[str, Any] | None],
        gauges: Mapping[str, Mapping[str, float] | None] | RainAt,
        evidence: Mapping[str, tuple[float, float]] | None = None,
    ) -> WaterResult:
        """``gauges``: each gauge's rain state, or ``(gauge, t) → its state at event time
        t`` (``models.flood_state.RainHistory.at``), which gives every site the rain of its
        gauge as it stood at the site's newest reading of the batch — never rain that fell
        after it, however far ahead the rain stream was read. ``evidence``: device →
        (event time, value) of the newest water depth (cm) of other sites and water cover
        (0..1) of cameras (``streams.views.EvidenceView``)."""
        devices = sorted({r.device_id for r in readings})
        row = {d: i for i, d in enumerate(devices)}
        states = {
            part: stack(STATE_TYPES[part], part, devices, stored, STORED_FIELDS.get(part))
            for part in PARTS
        }
        idx = np.array([row[r.device_id] for r in readings], dtype=np.int64)
        ts = np.array([r.ts.timestamp() for r in readings])
        last = last_per_device(idx, ts, len(devices))
        _merge_rain(states["flood"], devices, self.gauge_of, gauges, ts[last])
        sites = Sites.from_attrs([self.attrs.get(d, {}) for d in devices])

        value = np.array([r.level_cm for r in readings], dtype=float)
        ingest_flag = np.array([int(r.qc) for r in readings], dtype=np.int64)

        states["qc"], qc_out = qc.step_batch(states["qc"], idx, ts, value, self.qc_params)
        flag = qc.combine(qc_out["flag"], ingest_flag)
        usable = (flag != QcFlag.FAIL) & (flag != QcFlag.MISSING)
        states["det"], det_out = detectors.step_batch(
            states["det"], idx, ts, np.where(usable, value, np.nan), self.det_params
        )
        states["flood"], _ = flood_state.update_depth_batch(
            states["flood"], idx, ts, np.where(usable, value, np.nan)
        )
        # Forecast each site once, at its newest reading of the batch (the state now
        # holds every reading of the batch; earlier readings share this forecast).
        X = flood_state.features(states["flood"], sites.drainage_mm_h, ts[last])
        forecast = self.forecaster.predict(X, sites)
        horizon_k = list(forecast.horizons_min).index(self.params.horizon_min)
        p_site = forecast.p_exceed[_threshold_key(forecast.p_exceed, self.params.impassable_cm)][
            :, horizon_k
        ]
        rain_1h = X[:, flood_state.FEATURES.index("rain_60_mm")]
        since_rain = X[:, flood_state.FEATURES.index("min_since_rain")][idx]
        # Standing water with no rain for hours is not a storm flood: such readings are
        # questionable (weighted like QC suspect) and, if they persist, a device fault.
        dry_spell = since_rain >= self.params.dry_after_min
        implausible = dry_spell & (value >= self.params.alert_cm)
        flag = np.where(
            implausible & np.isin(flag, (QcFlag.PASS, QcFlag.NOT_EVALUATED)),
            QcFlag.SUSPECT,
            flag,
        )
        neighbour, camera = self.support(devices, ts[last], evidence or {})
        confidence = fuse(p_site[idx], rain_1h[idx], flag, self.params, neighbour[idx], camera[idx])

        states["hyg"], decisions = hygiene.step_batch(
            states["hyg"], idx, ts, value, confidence, usable & ~implausible, self.params.hygiene
        )
        fault = (flag == QcFlag.FAIL) | implausible
        fault |= qc_out.get("flat_line", np.zeros_like(flag)) >= QcFlag.SUSPECT
        states["maint"], maint = hygiene.step_batch(
            states["maint"],
            idx,
            ts,
            fault.astype(float),
            np.zeros(len(readings)),
            np.isfinite(value),
            MAINTENANCE,
        )
        cols = {
            part: rows(STATE_TYPES[part], states[part], len(devices), STORED_FIELDS.get(part))
            for part in PARTS
        }
        out_states = {d: {part: cols[part][i] for part in PARTS} for i, d in enumerate(devices)}

        # Assessments are built from trusted arrays (model_construct: no re-validation,
        # which cost more than all the maths above); scalars come out of numpy once.
        assessments = []
        alerts = []
        is_last = np.zeros(len(readings), dtype=bool)
        is_last[last] = True
        version = str(forecast.model_version)
        site_forecasts = {
            int(i): [Forecast.model_construct(**f) for f in forecast.row(int(i))]
            for i in range(len(devices))
        }
        anomaly = np.clip(det_out["score"], 0.0, 1.0).tolist()
        risk = np.clip(confidence, 0.0, 1.0).tolist()
        flags = flag.tolist()
        idx_list = idx.tolist()
        rain_l, nb_l, cam_l = rain_1h.tolist(), neighbour.tolist(), camera.tolist()
        last_l = is_last.tolist()
        maint_l = maint.tolist()
        decisions_l = decisions.tolist()
        for j, reading in enumerate(readings):
            i = idx_list[j]
            assessments.append(
                Assessment.model_construct(
                    device_id=reading.device_id,
                    kind="water",
                    ts=reading.ts,
                    grid_id=reading.grid_id,
                    district_id=reading.district_id,
                    value=reading.level_cm,
                    qc=QcFlag(flags[j]),
                    anomaly_score=anomaly[j],
                    forecasts=site_forecasts[i] if last_l[j] else [],
                    risk=risk[j],
                    model_version=version,
                    detail={
                        "rain_60_mm": rain_l[i],
                        "neighbour_agree": nb_l[i],
                        "camera_agree": cam_l[i],
                    },
                )
            )
            if maint_l[j] in (hygiene.EMIT_OBSERVED, hygiene.EMIT_CLEAR):
                alerts.append(self._maintenance(reading, maint_l[j], flags[j]))
            if decisions_l[j] != hygiene.NONE:
                alerts.append(self._alert(reading, decisions_l[j], risk[j], forecast, i, horizon_k))
        return WaterResult(out_states, assessments, alerts)

    def support(
        self, devices: list[str], now: np.ndarray, evidence: Mapping[str, tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per device, how much its neighbours' observed depth and the cameras watching it
        agree that water is standing here (0..1 each). Only evidence taken within
        ``evidence_max_age_s`` before the device's newest reading counts — and not after
        it (beyond ``evidence_max_ahead_s`` of clock tolerance): a job read ahead of this
        one must not hand a site what its neighbours saw later."""
        prm = self.params
        neighbour = np.zeros(len(devices))
        camera = np.zeros(len(devices))
        for i, d in enumerate(devices):
            for other in self.neighbours.get(d, ()):
                seen = evidence.get(other)
                if seen is not None and self._timely(now[i] - seen[0]):
                    neighbour[i] = max(neighbour[i], seen[1] / prm.alert_cm)
            for cam in self.cameras.get(d, ()):
                seen = evidence.get(cam)
                if seen is not None and self._timely(now[i] - seen[0]):
                    camera[i] = max(camera[i], seen[1] / prm.camera_cover_full)
        return np.clip(neighbour, 0.0, 1.0), np.clip(camera, 0.0, 1.0)

    def _timely(self, age_s: float) -> bool:
        return -self.params.evidence_max_ahead_s <= age_s <= self.params.evidence_max_age_s

    def _maintenance(self, r: WaterReading, decision: int, flag: int) -> Alert:
        kind: AlertKind = "maintenance" if decision == hygiene.EMIT_OBSERVED else "clear"
        why = _fault_why(flag, r.level_cm) if kind == "maintenance" else "readings healthy again"
        return device_fault_alert(
            self.registry.placement(r.device_id),
            ts=r.ts,
            kind=kind,
            tag=kind,
            why=f"{r.device_id}: {why}",
            evidence={"level_cm": r.level_cm, "qc": flag},
            rule_version=RULE_VERSION,
        )

    def _alert(
        self, r: WaterReading, decision: int, confidence: float, fc: Any, i: int, k: int
    ) -> Alert:
        kind = hygiene.DECISION_KIND[decision]
        site = self.registry.placement(r.device_id).device.site or r.device_id
        key = incident_key(r.grid_id, Category.WATERLOGGING, site)
        severity = Severity.MAJOR
        if decision == hygiene.EMIT_ESCALATE or r.level_cm >= self.params.hygiene.escalate_at:
            severity = Severity.CRITICAL
        elif kind in ("forecast", "recede", "clear"):
            severity = Severity.MINOR if kind != "forecast" else Severity.MAJOR
        q50 = float(fc.q50[i, k])
        expected_at = None
        why = f"{r.device_id} at {r.level_cm:.1f} cm"
        if kind == "forecast":
            expected_at = r.ts + timedelta(minutes=self.params.horizon_min)
            why = (
                f"forecast {q50:.1f} cm in {self.params.horizon_min} min at {site} "
                f"(P>{self.params.impassable_cm:g} cm = {confidence:.0%}), now {r.level_cm:.1f} cm"
            )
        elif kind == "observed":
            why = f"{site} measured {r.level_cm:.1f} cm ≥ {self.params.impassable_cm:g} cm"
        elif kind == "clear":
            why = f"{site} back to {r.level_cm:.1f} cm"
        elif kind == "recede":
            why = f"forecast for {site} receded (P = {confidence:.0%})"
        placement = self.registry.placement(r.device_id)
        return Alert(
            alert_id=f"{key}:{kind}:{int(r.ts.timestamp() * 1000)}:{decision}",
            incident_key=key,
            kind=kind,  # type: ignore[arg-type]
            category=Category.WATERLOGGING,
            severity=severity,
            grid_id=r.grid_id,
            district_id=r.district_id,
            site=site,
            ts=r.ts,
            probability=float(np.clip(confidence, 0.0, 1.0)),
            expected_at=expected_at,
            lon=placement.device.lon,
            lat=placement.device.lat,
            why=why[:500],
            evidence={
                "device_ids": [r.device_id],
                "level_cm": r.level_cm,
                "qc": int(r.qc),
                "forecast": fc.row(i),
                "model_version": str(fc.model_version),
            },
            rule_version=RULE_VERSION,
        )


def _fault_why(flag: int, level_cm: float) -> str:
    if flag == QcFlag.FAIL:
        return f"readings fail quality control (latest {level_cm:.1f} cm)"
    return f"implausible or stuck reading ({level_cm:.1f} cm without rain, or a flat line)"


def fuse(
    p: np.ndarray,
    rain_60_mm: np.ndarray,
    flag: np.ndarray,
    params: WaterParams,
    neighbour: np.ndarray | None = None,
    camera: np.ndarray | None = None,
) -> np.ndarray:
    """Incident confidence of a site from its own forecast ``p`` and the independent
    modalities that agree with it: its rain gauge (heavy rain in the last hour),
    neighbouring sites' observed depth and the cameras watching its road (0..1 each).

    Agreement lifts a forecast towards certainty, none halves it: a forecast alone, in
    dry weather with no neighbour or camera seeing water, stays below hygiene's
    ``p_on`` and never pre-alerts (the water seen crossing still opens an incident).
    The site's QC flag weighs the whole: a questionable reading counts half unless a
    neighbour or a camera confirms standing water; a failed one counts nothing.
    """
    zeros = np.zeros_like(p)
    nb = zeros if neighbour is None else neighbour
    cam = zeros if camera is None else camera
    rain = np.clip(np.nan_to_num(rain_60_mm) / params.heavy_rain_mm_h, 0.0, 1.0)  # mm ≈ mm/h
    agree = 1.0 - (1.0 - rain) * (1.0 - nb) * (1.0 - cam)
    fused = p * (0.5 + 0.5 * agree) + (1.0 - p) * p * agree * 0.5
    confirmed = np.maximum(nb, cam)
    weight = np.select(
        [flag == QcFlag.SUSPECT, (flag == QcFlag.FAIL) | (flag == QcFlag.MISSING)],
        [0.5 + 0.5 * confirmed, 0.0],
        1.0,
    )
    return np.clip(fused * weight, 0.0, 1.0)


def nearby(registry: Registry, kind: str, other: str, within_m: float) -> dict[str, list[str]]:
    """For each device of ``kind``, the devices of ``other`` kind within ``within_m``
    metres (itself excluded), nearest first."""
    mine = registry.devices_of(kind)
    theirs = registry.devices_of(other)
    if not mine or not theirs:
        return {p.device.device_id: [] for p in mine}
    lon = np.array([p.device.lon for p in theirs])
    lat = np.array([p.device.lat for p in theirs])
    out: dict[str, list[str]] = {}
    for p in mine:
        dx = (lon - p.device.lon) * 111_320.0 * np.cos(np.radians(p.device.lat))
        dy = (lat - p.device.lat) * 110_540.0
        dist = np.hypot(dx, dy)
        order = np.argsort(dist)
        out[p.device.device_id] = [
            theirs[j].device.device_id
            for j in order
            if dist[j] <= within_m and theirs[j].device.device_id != p.device.device_id
        ]
    return out


def nearest_gauges(registry: Registry) -> dict[str, str | None]:
    gauges = registry.devices_of("rain")
    if not gauges:
        return {p.device.device_id: None for p in registry.devices_of("water")}
    g_xy = np.array([[g.device.lon, g.device.lat] for g in gauges])
    out: dict[str, str | None] = {}
    for p in registry.devices_of("water"):
        d = np.hypot(g_xy[:, 0] - p.device.lon, (g_xy[:, 1] - p.device.lat))
        out[p.device.device_id] = gauges[int(np.argmin(d))].device.device_id
    return out


def _threshold_key(p_exceed: Mapping[float, Any], threshold: float) -> float:
    return min(p_exceed, key=lambda t: abs(float(t) - threshold))


def _merge_rain(
    flood: dict[str, np.ndarray],
    devices: list[str],
    gauge_of: Mapping[str, str | None],
    gauges: Mapping[str, Mapping[str, float] | None] | RainAt,
    at: np.ndarray,
) -> None:
    looked_up: dict[tuple[str, float], Mapping[str, float] | None] = {}
    for i, d in enumerate(devices):
        g = gauge_of.get(d)
        if not g:
            continue
        if callable(gauges):  # sites of one gauge mostly report at the same times
            key = (g, float(at[i]))
            if key not in looked_up:
                looked_up[key] = gauges(*key)
            doc = looked_up[key]
        else:
            doc = gauges.get(g)
        if doc:
            for k in RAIN_FIELDS:
                if k in doc:
                    flood[k][i] = float(doc[k])


def rain_state_update(
    stored: Mapping[str, Mapping[str, float] | None],
    gauge_ids: Sequence[str],
    ts: np.ndarray,
    rain_mm: np.ndarray,
    intensity: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Fold rain readings into per-gauge rain states (the rain fields of FloodState)."""
    gauges = sorted(set(gauge_ids))
    row = {g: i for i, g in enumerate(gauges)}
    arrays = FloodState.initial_arrays(len(gauges))
    for i, g in enumerate(gauges):
        for k, v in (stored.get(g) or {}).items():
            if k in arrays:
                arrays[k][i] = float(v)
    idx = np.array([row[g] for g in gauge_ids], dtype=np.int64)
    arrays, _ = flood_state.update_rain_batch(arrays, idx, ts, rain_mm, intensity)
    return {g: {k: float(arrays[k][i]) for k in RAIN_FIELDS} for i, g in enumerate(gauges)}
