"""Rain: design storms (Chicago / Keifer–Chu hyetographs) moving across the district,
plus drizzle spells and dry weather.

Intensity–duration–frequency follows the Shanghai storm-intensity formula (DB31/T
1043-2017 form)::

    q = 1600 (1 + 0.846 lg P) / (t + 7)^0.656      L/(s·ha),  1 L/(s·ha) = 0.36 mm/h

so the average intensity of a ``t``-minute storm of return period ``P`` years is
``i(t) = A(P) / (t + b)^c`` mm/h. The Chicago hyetograph distributes that storm so that
every window around the peak (in the ratio ``r``) holds the IDF depth of its length.

A storm is a rain band moving with a speed and direction: a point's hyetograph starts
when the band's front reaches it (projection on the direction of travel) and is scaled
by a Gaussian of its distance across the band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.scenario import StormSpec, WeatherSpec

IDF_B = 7.0
IDF_C = 0.656


def idf_a(return_period_y: float) -> float:
    """The IDF numerator A(P) in mm/h·min^c."""
    return 0.36 * 1600.0 * (1.0 + 0.846 * math.log10(return_period_y))


def idf_intensity(duration_min: float, return_period_y: float) -> float:
    """Average intensity (mm/h) of a storm lasting ``duration_min`` minutes."""
    return idf_a(return_period_y) / (duration_min + IDF_B) ** IDF_C


def storm_depth_mm(duration_min: float, return_period_y: float) -> float:
    return idf_intensity(duration_min, return_period_y) * duration_min / 60.0


def chicago(
    t_min: np.ndarray, duration_min: float, return_period_y: float, peak_ratio: float
) -> np.ndarray:
    """Instantaneous intensity (mm/h) of a Chicago hyetograph at ``t_min`` after its start."""
    a, b, c, r = idf_a(return_period_y), IDF_B, IDF_C, peak_ratio
    t = np.asarray(t_min, dtype=float)
    tp = r * duration_min
    before = np.maximum(tp - t, 0.0) / r
    after = np.maximum(t - tp, 0.0) / (1.0 - r)
    x = np.where(t < tp, before, after)
    i = a * ((1.0 - c) * x + b) / (x + b) ** (1.0 + c)
    return np.where((t >= 0) & (t <= duration_min), i, 0.0)


def hyetograph(spec: StormSpec, t_min: np.ndarray) -> np.ndarray:
    d = spec.duration / 60.0
    if spec.hyetograph == "chicago":
        i = chicago(t_min, d, spec.return_period_y, spec.peak_ratio)
    else:
        t = np.asarray(t_min, dtype=float)
        i = np.where((t >= 0) & (t <= d), idf_intensity(d, spec.return_period_y), 0.0)
    return i * spec.intensity_scale


@dataclass
class _StormAtPoints:
    spec: StormSpec
    arrival_s: np.ndarray  # when the band's front reaches each point, from run start
    factor: np.ndarray  # Gaussian of the distance across the band


class RainField:
    """Rain intensity (mm/h) at fixed points (metres) over event time (s from start)."""

    def __init__(
        self,
        spec: WeatherSpec,
        x_m: np.ndarray,
        y_m: np.ndarray,
        extent_m: tuple[float, float],
        duration_s: float,
        tick_s: float,
        rng: np.random.Generator,
    ):
        self.spec = spec
        self.n = len(x_m)
        width, height = extent_m
        corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=float)
        centre = np.array([width / 2, height / 2])
        self.storms: list[_StormAtPoints] = []
        for storm in spec.storms:
            theta = math.radians(storm.direction_deg)
            ux, uy = math.sin(theta), math.cos(theta)  # 0° = towards north
            along = x_m * ux + y_m * uy
            first = float((corners @ np.array([ux, uy])).min())
            speed = max(storm.speed, 0.1)
            arrival = (
                storm.start + (along - first) / speed
                if storm.speed > 0
                else np.full(self.n, storm.start)
            )
            across = (x_m - centre[0]) * uy - (y_m - centre[1]) * ux
            factor = np.exp(-0.5 * (across / storm.width) ** 2)
            self.storms.append(_StormAtPoints(storm, np.asarray(arrival), factor))
        # Drizzle: district-wide on/off spells (Markov), a fixed spatial pattern.
        n_ticks = math.ceil(duration_s / tick_s) + 1
        self.tick_s = tick_s
        self.drizzle_on = np.zeros(n_ticks, dtype=bool)
        if spec.background == "drizzle" and spec.drizzle_intensity > 0:
            mean_spell = 2400.0  # s
            cover = spec.drizzle_cover
            p_on_to_off = tick_s / mean_spell
            p_off_to_on = p_on_to_off * cover / max(1 - cover, 1e-6)
            u = rng.random(n_ticks)
            state = rng.random() < cover
            for k in range(n_ticks):
                self.drizzle_on[k] = state
                state = (u[k] >= p_on_to_off) if state else (u[k] < p_off_to_on)
        self.drizzle_pattern = spec.drizzle_intensity * rng.uniform(0.6, 1.4, self.n)

    def intensity(self, t_s: float) -> np.ndarray:
        """Intensity (mm/h) at every point, ``t_s`` seconds after the run start."""
        k = min(int(t_s // self.tick_s), len(self.drizzle_on) - 1)
        out = self.drizzle_pattern * float(self.drizzle_on[k])
        for s in self.storms:
            local_min = (t_s - s.arrival_s) / 60.0
            out = out + hyetograph(s.spec, local_min) * s.factor
        return out
