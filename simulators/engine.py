"""The simulation loop: pure, seeded, in event time, vectorised per time step.

``iter_readings(scenario, rng, start)`` yields ``Message``s — what devices publish,
with their publish time — ordered by publish time. The whole state advances one tick
(``scenario.tick``, 10 s by default) at a time with numpy over all devices; each device
reports every ``interval_s`` at its own phase. No clock, no I/O: the same scenario and
seed give the same messages, byte for byte.

``Simulation`` is the same loop with its ground truth (``.truth``) filled as it runs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from datetime import datetime

import numpy as np
from scipy.spatial import cKDTree

from gridwatch.contracts import Category
from gridwatch.registry import Placement
from simulators import engine_step
from simulators.city import City, generate_city
from simulators.crowds import (
    BikeModel,
    BikeSites,
    CameraSites,
    schedule_incidents,
)
from simulators.faults import FaultPlan
from simulators.messages import Message, TsCache, parse_rfc3339
from simulators.scenario import MALFORMED_CLASSES, Scenario, ScenarioError
from simulators.truth import GroundTruth, Incident, IncidentTracker, Residents
from simulators.water import WaterModel, WaterSites
from simulators.weather import RainField

KIND_ORDER = ("water", "rain", "bike", "camera", "status")


class _Group:
    """The devices of one kind, their reporting phase and sequence numbers."""

    def __init__(self, kind: str, places: list[Placement], tick_s: float, rng: np.random.Generator):
        self.kind = kind
        self.places = places
        self.ids = [p.device.device_id for p in places]
        self.topics = [f"gw/v1/{kind}/{i}" for i in self.ids]
        self.n = len(places)
        self.period = np.array(
            [max(1, round(p.device.interval_s / tick_s)) for p in places], dtype=np.int64
        )
        self.phase = rng.integers(0, np.maximum(self.period, 1)) if self.n else self.period
        self.seq = np.zeros(self.n, dtype=np.int64)
        self.frozen: dict[int, tuple] = {}
        self.lon = np.array([p.device.lon for p in places])
        self.lat = np.array([p.device.lat for p in places])
        # Devices of a kind usually share one interval: precompute who reports at each
        # phase so a tick only looks up its list.
        self._by_phase: list[np.ndarray] | None = None
        if self.n and (self.period == self.period[0]).all():
            p = int(self.period[0])
            self._by_phase = [np.flatnonzero(self.phase == r) for r in range(p)]

    def due(self, k: int) -> np.ndarray:
        if self._by_phase is not None:
            return self._by_phase[k % len(self._by_phase)]
        return np.flatnonzero((k - self.phase) % self.period == 0)

    def attrs(self, name: str, default: float) -> np.ndarray:
        return np.array([float(p.device.attrs.get(name, default)) for p in self.places])


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        rng: np.random.Generator,
        start: datetime | None = None,
        *,
        city: City | None = None,
    ):
        self.scenario = sc = scenario
        self.city = city or generate_city(
            sc.city.seed, sc.city.size, max_devices=sc.city.max_devices
        )
        self.registry = self.city.registry()
        (r_phase, r_weather, r_bike, r_cam, r_fault, self.r_msg, r_res, self.r_noise, r_drain) = (
            rng.spawn(9)
        )
        begin = start or sc.start
        self.start = int(begin.timestamp())
        self.run_s = int(sc.duration)
        self.tick = int(sc.tick)
        self.n_ticks = max(1, math.ceil(self.run_s / self.tick))
        self.ts = TsCache()
        self.truth = GroundTruth()
        places: dict[str, list[Placement]] = {k: [] for k in KIND_ORDER}
        for dev in self.city.devices:
            p = self.registry.devices[dev["device_id"]]
            places[p.device.kind].append(p)
        self.groups = {k: _Group(k, places[k], self.tick, r_phase) for k in KIND_ORDER}
        g = self.groups
        # -- weather over every device position ---------------------------------------
        lon = np.concatenate([g[k].lon for k in KIND_ORDER])
        lat = np.concatenate([g[k].lat for k in KIND_ORDER])
        x, y = self.city.xy_m(lon, lat)
        self.rain = RainField(
            sc.weather, x, y, self.city.extent_m(), self.run_s, self.tick, r_weather
        )
        bounds = np.cumsum([0] + [g[k].n for k in KIND_ORDER])
        self.slices = {k: slice(bounds[i], bounds[i + 1]) for i, k in enumerate(KIND_ORDER)}
        # -- water -------------------------------------------------------------------
        wattrs = [dict(p.device.attrs) for p in g["water"].places]
        # Blocked inlets differ from site to site around the scenario's mean (Beta, k = 4).
        mean_block = sc.weather.drain_blockage
        blockage = (
            r_drain.beta(4 * mean_block, 4 * (1 - mean_block), len(wattrs))
            if 0 < mean_block < 1
            else np.full(len(wattrs), mean_block)
        )
        self.water = WaterModel(WaterSites.from_attrs(wattrs), blockage=blockage)
        self.exposed = np.array([a.get("exposure", "road") != "none" for a in wattrs], dtype=bool)
        self.battery = {k: r_phase.uniform(3.7, 4.15, g[k].n) for k in ("water", "status")}
        self.rssi = r_phase.uniform(-115, -75, g["water"].n)
        self.mount_cm = g["water"].attrs("mount_mm", 2_500.0) / 10.0
        self.boot = self.start - r_phase.integers(86_400, 60 * 86_400, g["status"].n)
        self.rain_acc = np.zeros(g["rain"].n)
        # -- bikes -------------------------------------------------------------------
        bp = g["bike"].places
        cap = g["bike"].attrs("capacity", 100.0)
        mix = np.array(
            [
                [
                    float(p.device.attrs.get(f"mix_{o}", 1 / 3))
                    for o in ("meituan", "hellobike", "didi")
                ]
                for p in bp
            ]
        ).reshape(-1, 3)
        residential = np.array(
            [p.device.attrs.get("side", "residential") == "residential" for p in bp], dtype=bool
        )
        self.bikes = BikeModel(
            BikeSites(cap, mix, residential, r_bike.uniform(0.1, 0.5, len(bp))), r_bike
        )
        self.bike_cap = cap
        # -- cameras -----------------------------------------------------------------
        cp = g["camera"].places
        self.cam = CameraSites(
            g["camera"].attrs("person_per_min", 20.0),
            g["camera"].attrs("vehicle_per_min", 10.0),
            np.zeros(len(cp)),
        )
        cx, cy = self.city.xy_m(g["camera"].lon, g["camera"].lat)
        wx, wy = self.city.xy_m(g["water"].lon, g["water"].lat)
        self.cam_water = np.full(len(cp), -1, dtype=np.int64)
        if len(wx) and len(cx):
            dist, near = cKDTree(np.column_stack([wx, wy])).query(np.column_stack([cx, cy]))
            self.cam_water = np.where(dist < 250.0, near, -1).astype(np.int64)
        self._setup_events(sc, r_cam)
        # -- faults, residents, truth ------------------------------------------------
        self.plan = FaultPlan.draw(
            sc.faults, {k: g[k].ids for k in KIND_ORDER}, self.run_s, r_fault, self.start, self.ts
        )
        self.truth.faults.extend(self.plan.log)
        self._device_fault_incidents()
        self.classes = list(sc.faults.malformed_classes or MALFORMED_CLASSES)
        self.residents = Residents(sc.complaints, r_res, self.start + self.run_s)
        self.truth.complaints = self.residents.complaints
        self.trackers = self._trackers()
        self.delayed: list[tuple[int, int, Message]] = []
        self._counter = 0

    # -- set-up helpers -------------------------------------------------------------

    def _setup_events(self, sc: Scenario, rng: np.random.Generator) -> None:
        g = self.groups
        cam_station = [str(p.device.attrs.get("station", "")) for p in g["camera"].places]
        bike_station = [str(p.device.attrs.get("station", "")) for p in g["bike"].places]
        stations = sorted({s for s in bike_station + cam_station if s})
        self.events: list[tuple[float, float, int, np.ndarray, np.ndarray]] = []
        if sc.events and not stations:
            raise ScenarioError("events: this city has no metro station (try a bigger size)")
        for i, ev in enumerate(sc.events):
            if ev.station is not None and ev.station not in stations:
                raise ScenarioError(
                    f"events.{i}.station: no station {ev.station!r} in this city "
                    f"(stations: {', '.join(stations[:20])})"
                )
            # Default venue: the business-side station with the most parking sites.
            business = [
                st
                for st, p in zip(bike_station, g["bike"].places, strict=True)
                if p.device.attrs.get("side") == "business"
            ]
            station = ev.station or max(
                stations, key=lambda s: (business.count(s), bike_station.count(s), s)
            )
            bikes = np.array([s == station for s in bike_station], dtype=bool)
            cams = np.array([s == station for s in cam_station], dtype=bool)
            self.events.append((ev.start, ev.start + ev.duration, ev.attendance, bikes, cams))
        # Street incidents per camera, from a seeded schedule.
        st = [p.device.site_type for p in g["camera"].places]
        weight = np.array([{"metro_exit": 1.5, "commercial_street": 1.5}.get(s, 0.3) for s in st])
        offset = sc.utc_offset_h * 3600
        local0 = self.start + offset
        midnight = local0 - local0 % 86400
        evenings = np.array(
            [
                midnight + d * 86400 + 17 * 3600 - offset - self.start
                for d in range(-1, self.run_s // 86400 + 2)
            ],
            dtype=float,
        )
        n = g["camera"].n
        inc = sc.incidents
        self.schedules = {
            Category.STREET_VENDOR: schedule_incidents(
                rng,
                n,
                inc.vendor_per_day * weight,
                self.run_s,
                3600,
                evening_local_start_s=evenings,
            ),
            Category.EXPOSED_GARBAGE: schedule_incidents(
                rng, n, np.full(n, inc.garbage_per_day), self.run_s, 3 * 3600
            ),
            Category.ROAD_OCCUPATION: schedule_incidents(
                rng, n, np.full(n, inc.road_occupation_per_day), self.run_s, 2 * 3600
            ),
        }
        self.vendor_n = rng.integers(1, 4, len(self.schedules[Category.STREET_VENDOR]))
        self.schedule_arrays: dict[Category, tuple[np.ndarray, ...]] = {}
        for cat, sched in self.schedules.items():
            arr = np.array(sched, dtype=float).reshape(-1, 3)
            weight = (
                self.vendor_n.astype(float)
                if cat is Category.STREET_VENDOR
                else np.ones(len(sched))
            )
            self.schedule_arrays[cat] = (arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], weight)

    def _trackers(self) -> dict[Category, IncidentTracker]:
        g, sc = self.groups, self.scenario.complaints

        def make(cat: Category, kind: str, sites: list[str], worthy: float) -> IncidentTracker:
            places = g[kind].places
            return IncidentTracker(
                cat,
                sites,
                [p.grid_id for p in places],
                [p.district_id for p in places],
                g[kind].lon,
                g[kind].lat,
                worthy,
                self.truth.incidents,
                self.residents.nuisance,
            )

        water_sites = [p.device.site or p.device.device_id for p in g["water"].places]
        bike_sites = [p.device.site or p.device.device_id for p in g["bike"].places]
        cams = g["camera"].ids
        return {
            Category.WATERLOGGING: make(Category.WATERLOGGING, "water", water_sites, sc.water_for),
            Category.BIKE_OVERFLOW: make(Category.BIKE_OVERFLOW, "bike", bike_sites, sc.bike_for),
            Category.STREET_VENDOR: make(Category.STREET_VENDOR, "camera", cams, sc.vendor_for),
            Category.EXPOSED_GARBAGE: make(
                Category.EXPOSED_GARBAGE, "camera", cams, sc.garbage_for
            ),
            Category.ROAD_OCCUPATION: make(
                Category.ROAD_OCCUPATION, "camera", cams, sc.road_occupation_for
            ),
            Category.CROWDING: make(Category.CROWDING, "camera", cams, sc.crowding_for),
        }

    def _device_fault_incidents(self) -> None:
        """Lasting faults are incidents too: each would deserve a device_fault ticket."""
        counts: dict[str, int] = {}
        for f in sorted(self.plan.log, key=lambda f: (f["start"], f["device_id"], f["fault"])):
            place = self.registry.devices[f["device_id"]]
            dev = f["device_id"]
            counts[dev] = counts.get(dev, 0) + 1
            start = parse_rfc3339(f["start"])
            end = parse_rfc3339(f["end"]) if f["end"] else None
            self.truth.incidents.append(
                Incident(
                    incident_id=f"inc-device_fault-{dev}-{counts[dev]:04d}",
                    category=Category.DEVICE_FAULT,
                    grid_id=place.grid_id,
                    district_id=place.district_id,
                    site=dev,
                    lon=place.device.lon,
                    lat=place.device.lat,
                    start=start,
                    end=end,
                    detail=f["fault"],
                )
            )

    # -- the loop -------------------------------------------------------------------

    def messages(self) -> Iterator[Message]:
        """Run the scenario, yielding messages in publish order; fills ``truth``."""
        for k in range(self.n_ticks):
            rel = k * self.tick
            t = self.start + rel
            while self.delayed and self.delayed[0][0] <= t:
                yield heapq.heappop(self.delayed)[2]
            yield from self._tick(k, rel, t)
        while self.delayed:
            yield heapq.heappop(self.delayed)[2]
        for tracker in self.trackers.values():
            tracker.finish()

    def _tick(self, k: int, rel: int, t: int) -> list[Message]:
        return engine_step.tick(self, k, rel, t)

    def push_delayed(self, at: int, msg: Message) -> None:
        self._counter += 1
        heapq.heappush(self.delayed, (at, self._counter, msg))


def iter_readings(
    scenario: Scenario,
    rng: np.random.Generator,
    start: datetime | None = None,
    *,
    truth: GroundTruth | None = None,
    city: City | None = None,
) -> Iterator[Message]:
    """Messages of ``scenario`` in publish order; ``truth`` is filled once they are all out."""
    sim = Simulation(scenario, rng, start, city=city)
    yield from sim.messages()
    if truth is not None:
        truth.incidents.extend(sim.truth.incidents)
        truth.complaints.extend(sim.truth.complaints)
        truth.faults.extend(sim.truth.faults)


__all__ = ["KIND_ORDER", "Message", "Simulation", "iter_readings"]
