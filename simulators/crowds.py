"""People, vehicles and shared bikes, vectorised over sites.

Bikes: every parking site at a metro exit sees a commute flow that depends on its side
of the line: on the residential side riders leave bikes in the morning and take them
in the evening; on the business side the other way round. Rain and weekends damp the
flows; a special event at a station brings a wave of bikes before it and takes them
away after; operators send trucks to sites that overflow (after a response delay)
and run scheduled rebalancing rounds.

Cameras: person and vehicle counts are Poisson around a site's base rate shaped by a
daily and weekly profile, damped by rain and boosted by events; incidents (vendors,
exposed garbage, road occupation) come from a seeded schedule; crowding is when the
expected person rate exceeds a multiple of normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OPERATORS = ("meituan", "hellobike", "didi")


def _gauss(h: float, centre: float, width: float) -> float:
    d = (h - centre + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width) ** 2)


def commute_profile(local_hour: float, weekday: int) -> tuple[float, float]:
    """(morning, evening) commute strength at a local hour; weekends are damped."""
    damp = 0.25 if weekday >= 5 else 1.0
    return damp * _gauss(local_hour, 8.2, 0.7), damp * _gauss(local_hour, 18.2, 0.9)


def activity_profile(local_hour: float, weekday: int) -> float:
    """Relative street activity (1 = daytime normal), low at night."""
    night = 0.08 + 0.92 * (0.5 - 0.5 * math.cos(2 * math.pi * (local_hour - 3.5) / 24.0))
    morning, evening = commute_profile(local_hour, weekday)
    weekend = 1.1 if weekday >= 5 else 1.0
    return weekend * night * (1.0 + 0.6 * morning + 0.5 * evening)


def weather_factor(intensity_mm_h: float | np.ndarray) -> float | np.ndarray:
    """Share of normal outdoor activity and riding under rain."""
    return 1.0 / (1.0 + intensity_mm_h / 4.0)


@dataclass
class BikeSites:
    capacity: np.ndarray  # (n,)
    mix: np.ndarray  # (n, 3) operator shares
    residential: np.ndarray  # (n,) bool: residential side of the line
    amplitude: np.ndarray  # (n,) peak flow in bikes per hour, per unit of capacity


class BikeModel:
    RESPONSE_S = 2700.0  # mean operator truck response to an overflowing site
    ROUNDS_LOCAL_H = (10.5, 15.5, 22.0)

    def __init__(self, sites: BikeSites, rng: np.random.Generator):
        self.sites = sites
        self.rng = rng
        n = len(sites.capacity)
        fill = rng.uniform(0.25, 0.55, n)
        self.ops = sites.mix * (sites.capacity * fill)[:, None]
        self.event_flow = np.zeros(n)  # bikes/s added by events (negative: taken)
        self._last_round: float | None = None

    def bikes(self) -> np.ndarray:
        return np.rint(self.ops).astype(np.int64).sum(axis=1)

    def step(
        self,
        dt_s: float,
        local_hour: float,
        weekday: int,
        rain_mm_h: float | np.ndarray,
        *,
        damp: float = 1.0,
    ) -> None:
        s = self.sites
        morning, evening = commute_profile(local_hour, weekday)
        sign = np.where(s.residential, morning - evening, evening - morning)
        rate_h = s.amplitude * s.capacity * sign * weather_factor(rain_mm_h) * damp
        mean = rate_h * dt_s / 3600.0 + self.event_flow * dt_s
        noise = self.rng.normal(0.0, 1.0, len(mean)) * np.sqrt(np.abs(mean) + 0.02)
        delta = mean + noise
        total = self.ops.sum(axis=1)
        # Departures take bikes in proportion to what is parked; arrivals by the mix.
        share = np.where(total[:, None] > 0, self.ops / np.maximum(total, 1e-9)[:, None], s.mix)
        split = np.where(delta[:, None] >= 0, s.mix, share)
        self.ops = np.maximum(self.ops + split * delta[:, None], 0.0)
        self._rebalance(dt_s, local_hour)

    def _rebalance(self, dt_s: float, local_hour: float) -> None:
        s = self.sites
        total = self.ops.sum(axis=1)
        over = total > 1.1 * s.capacity
        truck = over & (self.rng.random(len(total)) < dt_s / self.RESPONSE_S)
        scheduled = any(abs(local_hour - h) < dt_s / 7200.0 for h in self.ROUNDS_LOCAL_H)
        target = 0.7 * s.capacity
        if scheduled:
            truck = truck | (total > 0.85 * s.capacity)
            low = total < 0.1 * s.capacity
            self.ops[low] = s.mix[low] * (0.4 * s.capacity[low])[:, None]
        if truck.any():
            scale = np.minimum(target[truck] / np.maximum(total[truck], 1e-9), 1.0)
            self.ops[truck] *= scale[:, None]


@dataclass
class CameraSites:
    person_per_min: np.ndarray
    vehicle_per_min: np.ndarray
    event_boost: np.ndarray  # (n,) current extra multiple of people (events)


def camera_rates(
    sites: CameraSites, local_hour: float, weekday: int, rain_mm_h: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected person and vehicle counts per minute at every camera."""
    act = activity_profile(local_hour, weekday)
    wf = weather_factor(rain_mm_h)
    person = sites.person_per_min * act * wf * (1.0 + sites.event_boost)
    vehicle = sites.vehicle_per_min * act * (0.6 + 0.4 * wf)
    return person, vehicle


def schedule_incidents(
    rng: np.random.Generator,
    n_cameras: int,
    per_day: np.ndarray,
    run_s: float,
    median_s: float,
    *,
    evening_local_start_s: np.ndarray | None = None,
) -> list[tuple[int, float, float]]:
    """Poisson incident schedule: (camera index, start s, end s) from the run start.

    With ``evening_local_start_s`` (run seconds at which each local evening 17:00 falls),
    incidents only start during evenings (17:00–22:00 local), as street vendors do.
    """
    out: list[tuple[int, float, float]] = []
    if evening_local_start_s is None:
        windows = [(0.0, run_s)]
        scale = run_s / 86400.0
    else:
        windows = [(max(e, 0.0), min(e + 5 * 3600.0, run_s)) for e in evening_local_start_s]
        windows = [(a, b) for a, b in windows if b > a]
        scale = 1.0  # the daily rate applies per evening
    for a, b in windows:
        frac = (b - a) / run_s if evening_local_start_s is None else (b - a) / (5 * 3600.0)
        counts = rng.poisson(per_day * scale * frac)
        for cam in np.flatnonzero(counts):
            for _ in range(int(counts[cam])):
                start = float(rng.uniform(a, b))
                length = float(median_s * rng.lognormal(0.0, 0.5))
                out.append((int(cam), start, start + length))
    out.sort(key=lambda x: (x[1], x[0]))
    return out
