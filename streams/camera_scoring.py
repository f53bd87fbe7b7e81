"""Score a batch of camera readings: counts against hour-of-week baselines, incidents.

Per camera the state holds the live counts and one incident record per class; the
hour-of-week baseline (``models.camera_baseline``) is kept per slot (``{camera}@{hour of
week}``, 16 numbers) in a table of its own, so a reading rewrites one slot, not 168.
Street vendors, exposed garbage and road occupation are incidents by
presence: the analytics' count ≥ 1 held for 10 minutes opens a ticket of that category
keyed ``{grid}:{category}:{camera}`` (residents call after 30–60 minutes), none for 15
minutes clears it. Crowding is judged against the hour-of-week baseline: P(crowding)
≥ 0.8 for 10 minutes. A camera whose status is not ``ok`` neither learns nor raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridwatch.contracts import (
    Alert,
    Assessment,
    CameraReading,
    Category,
    QcFlag,
    Severity,
    incident_key,
)
from gridwatch.registry import Registry
from models import camera_baseline as cb
from models.state import StepState
from streams import hygiene
from streams.batch_state import rows, stack

RULE_VERSION = "camera-hygiene-1"
CATEGORIES = [Category(cb.INCIDENTS[c]) for c in cb.CLASSES]
# no forecasts (p_on above 1): a camera sees what is there
PRESENCE = hygiene.HygieneParams(
    threshold=1.0, escalate_at=5.0, hysteresis=0.5, p_on=2.0, p_off=-1.0,
    min_duration_s=600.0, clear_duration_s=900.0,
)  # fmt: skip
CROWDING = hygiene.HygieneParams(
    threshold=0.8, escalate_at=2.0, hysteresis=0.3, p_on=2.0, p_off=-1.0,
    min_duration_s=600.0, clear_duration_s=900.0,
)  # fmt: skip
WHY = {
    Category.STREET_VENDOR: "占道经营 street vendors",
    Category.EXPOSED_GARBAGE: "暴露垃圾 exposed garbage",
    Category.ROAD_OCCUPATION: "占道 road occupied",
    Category.CROWDING: "人员聚集 crowding",
}


@dataclass(frozen=True)
class CameraState(StepState):
    """A camera's live (smoothed) counts per class and its newest reading time."""

    live_vendor: float = float("nan")
    live_garbage: float = float("nan")
    live_road_occupation: float = float("nan")
    live_person: float = float("nan")
    t_last: float = float("nan")


def slot_key(device: str, hour: int) -> str:
    return f"{device}@{hour}"


def _slot_keys(readings: Sequence[CameraReading]) -> list[str]:
    """Each reading's baseline slot key (camera, hour of week of its time)."""
    hours = cb.hour_of_week(np.array([r.ts.timestamp() for r in readings]))
    return [slot_key(r.device_id, int(h)) for r, h in zip(readings, hours, strict=True)]


def slot_keys(readings: Sequence[CameraReading]) -> set[str]:
    """The baseline slots a batch reads and writes."""
    return set(_slot_keys(readings))


@dataclass
class CameraResult:
    states: dict[str, dict[str, Any]]
    assessments: list[Assessment]
    alerts: list[Alert]
    slots: dict[str, list[float]]


class CameraScorer:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.baseline = cb.CameraParams()

    def score(
        self,
        readings: Sequence[CameraReading],
        stored: Mapping[str, Mapping[str, Any] | None],
        stored_slots: Mapping[str, list[float] | None],
    ) -> CameraResult:
        """Score ``readings`` given their cameras' ``stored`` documents and the
        ``stored_slots`` of ``slot_keys(readings)`` (missing: not learned yet)."""
        devices = sorted({r.device_id for r in readings})
        row = {d: i for i, d in enumerate(devices)}
        keys = _slot_keys(readings)
        slot_names = sorted(set(keys))
        slot_row = {name: i for i, name in enumerate(slot_names)}
        cams = stack(CameraState, "cam", devices, stored)
        cameras = {
            "live": np.column_stack([cams[f"live_{c}"] for c in cb.CLASSES]),
            "t_last": cams["t_last"],
        }
        width = len(cb.CLASSES)
        slots = cb.empty_slots(len(slot_names))
        size = len(cb.SLOT_FIELDS) * width
        for i, name in enumerate(slot_names):
            doc = stored_slots.get(name)
            if isinstance(doc, list) and len(doc) == size:  # else: learned by an older schema
                for j, f in enumerate(cb.SLOT_FIELDS):
                    slots[f][i] = doc[j * width : (j + 1) * width]
        hyg = {
            c.value: stack(hygiene.HygieneState, f"hyg_{c.value}", devices, stored)
            for c in CATEGORIES
        }
        idx = np.array([row[r.device_id] for r in readings], dtype=np.int64)
        ts = np.array([r.ts.timestamp() for r in readings])
        ok = np.array([r.status == "ok" for r in readings])
        counts = np.array(
            [[getattr(r.counts, c) for c in cb.CLASSES] for r in readings], dtype=float
        )
        counts[~ok] = np.nan
        sidx = np.array([slot_row[key] for key in keys], dtype=np.int64)
        cameras, slots, prob = cb.step_slots(cameras, slots, idx, sidx, ts, counts, self.baseline)
        prob = np.nan_to_num(prob)
        decisions: dict[Category, np.ndarray] = {}
        for k, category in enumerate(CATEGORIES):
            crowd = category is Category.CROWDING
            hyg[category.value], decisions[category] = hygiene.step_batch(
                hyg[category.value],
                idx,
                ts,
                prob[:, k] if crowd else np.nan_to_num(counts[:, k]),
                np.zeros(len(readings)),
                ok,
                CROWDING if crowd else PRESENCE,
            )
        cols = {c: rows(hygiene.HygieneState, hyg[c.value], len(devices)) for c in CATEGORIES}
        live = {f"live_{c}": cameras["live"][:, k] for k, c in enumerate(cb.CLASSES)}
        cam_rows = rows(CameraState, {**live, "t_last": cameras["t_last"]}, len(devices))
        learned = np.hstack([slots[f] for f in cb.SLOT_FIELDS]).tolist()
        out: dict[str, dict[str, Any]] = {}
        for i, d in enumerate(devices):
            out[d] = {"cam": cam_rows[i]}
            for c in CATEGORIES:
                out[d][f"hyg_{c.value}"] = cols[c][i]
        assessments, alerts = [], []
        for j, r in enumerate(readings):
            assessments.append(
                Assessment(
                    device_id=r.device_id,
                    kind="camera",
                    ts=r.ts,
                    grid_id=r.grid_id,
                    district_id=r.district_id,
                    value=float(r.counts.person),
                    qc=QcFlag.PASS if ok[j] else QcFlag.SUSPECT,
                    risk=float(np.clip(prob[j].max(), 0.0, 1.0)),
                    model_version="camera-baseline-1",
                    detail=_detail(r, prob[j]),
                )
            )
            for k, c in enumerate(CATEGORIES):
                decision = int(decisions[c][j])
                if decision != hygiene.NONE:
                    alerts.append(self._alert(r, c, decision, float(prob[j, k])))
        return CameraResult(out, assessments, alerts, dict(zip(slot_names, learned, strict=True)))

    def _alert(self, r: CameraReading, category: Category, decision: int, p: float) -> Alert:
        kind = hygiene.DECISION_KIND[decision]
        key = incident_key(r.grid_id, category, r.device_id)
        placement = self.registry.placement(r.device_id)
        what = WHY[category]
        why = (
            f"{r.device_id}: {what} (P = {p:.0%})"
            if kind == "observed"
            else f"{r.device_id}: {what} gone"
        )
        return Alert(
            alert_id=f"{key}:{kind}:{int(r.ts.timestamp() * 1000)}",
            incident_key=key,
            kind=kind,  # type: ignore[arg-type]
            category=category,
            severity=Severity.MINOR,
            grid_id=r.grid_id,
            district_id=r.district_id,
            site=r.device_id,
            ts=r.ts,
            probability=float(np.clip(p, 0.0, 1.0)),
            lon=placement.device.lon,
            lat=placement.device.lat,
            why=why[:500],
            evidence={
                "device_ids": [r.device_id],
                "counts": r.counts.model_dump(exclude={"schema_version"}),
            },
            rule_version=RULE_VERSION,
        )


def _detail(r: CameraReading, prob: np.ndarray) -> dict[str, float]:
    """Incident probabilities, and the water cover the camera sees (flood fusion)."""
    detail = {f"p_{c.value}": float(prob[k]) for k, c in enumerate(CATEGORIES)}
    if r.water_cover is not None:
        detail["water_cover"] = float(r.water_cover)
    return detail
