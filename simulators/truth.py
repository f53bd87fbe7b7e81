"""Ground truth of a run: incidents, resident complaints and the fault log.

``IncidentTracker`` follows one category over many sites, one time step at a time,
vectorised: an incident starts when the start condition holds, ends when the stay
condition fails (hysteresis), and becomes *complaint-worthy* once its nuisance
condition has held for the category's time (e.g. water above 15 cm for 10 minutes).
Residents (``Residents``) then call the hotline with a random delay, or never.

``GroundTruth.write(dir)`` writes ``incidents.jsonl``, ``complaints.jsonl`` (one
``gridwatch.contracts.Complaint`` per line) and ``faults.jsonl``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.contracts import Category, Complaint, incident_key
from simulators.city import M_PER_DEG_LAT, M_PER_DEG_LON
from simulators.messages import parse_rfc3339, rfc3339
from simulators.scenario import ComplaintSpec

DESCRIPTIONS = {
    Category.WATERLOGGING: "路面积水 Standing water on the road, cars and people cannot pass",
    Category.BIKE_OVERFLOW: "共享单车乱停放 Shared bikes piled up, blocking the pavement",
    Category.STREET_VENDOR: "占道经营 Street vendors occupying the pavement",
    Category.EXPOSED_GARBAGE: "垃圾暴露 Exposed garbage not cleared",
    Category.ROAD_OCCUPATION: "占道 Road occupied by materials or stalls",
    Category.CROWDING: "人员聚集 Dense crowd near the metro exit",
}


@dataclass
class Incident:
    incident_id: str
    category: Category
    grid_id: str
    district_id: str
    site: str
    lon: float
    lat: float
    start: int
    end: int | None = None
    complaint_worthy_at: int | None = None
    first_complaint_at: int | None = None
    peak: float = 0.0
    complaint_ids: list[str] = field(default_factory=list)
    detail: str = ""  # device_fault: which fault

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Incident:
        def t(v: str | None) -> int | None:
            return None if v is None else parse_rfc3339(v)

        return cls(
            incident_id=doc["incident_id"],
            category=Category(doc["category"]),
            grid_id=doc["grid_id"],
            district_id=doc["district_id"],
            site=doc["site"],
            lon=doc["lon"],
            lat=doc["lat"],
            start=parse_rfc3339(doc["start"]),
            end=t(doc["end"]),
            complaint_worthy_at=t(doc["complaint_worthy_at"]),
            first_complaint_at=t(doc["first_complaint_at"]),
            peak=doc["peak"],
            complaint_ids=list(doc["complaint_ids"]),
            detail=doc.get("detail", ""),
        )

    def to_dict(self) -> dict[str, Any]:
        def t(v: int | None) -> str | None:
            return None if v is None else rfc3339(v)

        return {
            "incident_id": self.incident_id,
            "incident_key": incident_key(self.grid_id, self.category, self.site),
            "category": self.category.value,
            "grid_id": self.grid_id,
            "district_id": self.district_id,
            "site": self.site,
            "lon": self.lon,
            "lat": self.lat,
            "start": t(self.start),
            "complaint_worthy_at": t(self.complaint_worthy_at),
            "first_complaint_at": t(self.first_complaint_at),
            "end": t(self.end),
            "peak": round(self.peak, 2),
            "complaint_ids": self.complaint_ids,
            "detail": self.detail,
        }


class Residents:
    """Decide who calls the hotline about a complaint-worthy incident, and when."""

    def __init__(self, spec: ComplaintSpec, rng: np.random.Generator, run_end: int):
        self.spec = spec
        self.rng = rng
        self.run_end = run_end
        self.complaints: list[Complaint] = []

    def nuisance(self, incident: Incident, t: int) -> None:
        s = self.spec
        if self.rng.random() >= s.report_probability:
            return
        callers = 1 + int(self.rng.poisson(s.extra_callers_mean))
        sigma = 0.8
        delays = np.minimum(s.delay_median * self.rng.lognormal(0.0, sigma, callers), s.delay_max)
        jitter = self.rng.normal(0.0, 25.0, (callers, 2))
        for delay, (dx, dy) in zip(np.sort(delays), jitter, strict=True):
            ts = t + int(delay) + 1
            if ts > self.run_end:
                continue
            cid = f"c-{len(self.complaints) + 1:06d}"
            self.complaints.append(
                Complaint(
                    complaint_id=cid,
                    ts=datetime.fromtimestamp(ts, UTC),
                    category=incident.category,
                    lon=round(incident.lon + dx / M_PER_DEG_LON, 6),
                    lat=round(incident.lat + dy / M_PER_DEG_LAT, 6),
                    grid_id=incident.grid_id,
                    description=DESCRIPTIONS.get(incident.category, ""),
                    source="hotline",
                )
            )
            incident.complaint_ids.append(cid)
            if incident.first_complaint_at is None:
                incident.first_complaint_at = ts


class IncidentTracker:
    """Incidents of one category over ``sites``, updated once per time step."""

    def __init__(
        self,
        category: Category,
        sites: list[str],
        grids: list[str],
        districts: list[str],
        lon: np.ndarray,
        lat: np.ndarray,
        worthy_for_s: float,
        incidents: list[Incident],
        on_worthy: Callable[[Incident, int], None],
    ):
        self.category = category
        self.sites, self.grids, self.districts = sites, grids, districts
        self.lon, self.lat = lon, lat
        self.worthy_for_s = worthy_for_s
        self.incidents = incidents
        self.on_worthy = on_worthy
        n = len(sites)
        self.open = np.full(n, -1, dtype=np.int64)
        self.nuisance_since = np.full(n, math.inf)
        self.worthy = np.zeros(n, dtype=bool)
        self.peak = np.zeros(n)
        self.count = 0

    def update(
        self,
        t: int,
        start: np.ndarray,
        stay: np.ndarray,
        nuisance: np.ndarray,
        value: np.ndarray,
    ) -> None:
        is_open = self.open >= 0
        active = np.where(is_open, stay, start)
        if not (active.any() or is_open.any()):
            return  # nothing happening at any site (most of the time)
        for i in np.flatnonzero(is_open & ~active):
            inc = self.incidents[self.open[i]]
            inc.end = t
            inc.peak = float(self.peak[i])
            self.open[i] = -1
        for i in np.flatnonzero(active & ~is_open):
            self.count += 1
            inc = Incident(
                incident_id=f"inc-{self.category.value}-{self.sites[i]}-{self.count:04d}",
                category=self.category,
                grid_id=self.grids[i],
                district_id=self.districts[i],
                site=self.sites[i],
                lon=float(self.lon[i]),
                lat=float(self.lat[i]),
                start=t,
            )
            self.open[i] = len(self.incidents)
            self.incidents.append(inc)
            self.worthy[i] = False
            self.peak[i] = 0.0
        self.peak = np.where(active, np.maximum(self.peak, value), 0.0)
        now = nuisance & active
        self.nuisance_since = np.where(now, np.minimum(self.nuisance_since, t), math.inf)
        held = now & ~self.worthy & (t - self.nuisance_since >= self.worthy_for_s)
        for i in np.flatnonzero(held):
            self.worthy[i] = True
            inc = self.incidents[self.open[i]]
            inc.complaint_worthy_at = t
            self.on_worthy(inc, t)

    def finish(self) -> None:
        for i in np.flatnonzero(self.open >= 0):
            self.incidents[self.open[i]].peak = float(self.peak[i])


@dataclass
class GroundTruth:
    incidents: list[Incident] = field(default_factory=list)
    complaints: list[Complaint] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "incidents": directory / "incidents.jsonl",
            "complaints": directory / "complaints.jsonl",
            "faults": directory / "faults.jsonl",
        }
        incidents = sorted(self.incidents, key=lambda i: (i.start, i.incident_id))
        _write_lines(paths["incidents"], (i.to_dict() for i in incidents))
        complaints = sorted(self.complaints, key=lambda c: (c.ts, c.complaint_id))
        _write_lines(paths["complaints"], (c.model_dump(mode="json") for c in complaints))
        faults = sorted(
            self.faults, key=lambda f: (f.get("start") or f.get("at") or "", f["device_id"])
        )
        _write_lines(paths["faults"], faults)
        return paths

    @classmethod
    def load(cls, directory: Path) -> GroundTruth:
        """Read the truth files a run wrote (for scoring tickets against them)."""
        truth = cls()
        for doc in _read_lines(directory / "incidents.jsonl"):
            truth.incidents.append(Incident.from_dict(doc))
        for line in _raw_lines(directory / "complaints.jsonl"):
            truth.complaints.append(Complaint.model_validate_json(line))
        truth.faults.extend(_read_lines(directory / "faults.jsonl"))
        return truth


def _raw_lines(path: Path) -> list[str]:
    return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in _raw_lines(path)]


def _write_lines(path: Path, docs: Any) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")
