"""Per-site waterlogging as a reservoir, vectorised over sites.

Each low point collects rain from a contributing catchment (runoff coefficient ×
intensity × area), routed through a linear reservoir (the catchment lag), into a
ponding basin. The drainage network removes at most its capacity (designed in mm/h
over the catchment, reduced by blocked inlets); what it cannot take ponds, and the
pond drains with the spare capacity once the rain eases. So depth rises with a lag
after intense rain and recedes after it, and a bigger drainage capacity gives less
water. All state is a few numpy arrays; ``step`` is pure apart from updating them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MM_H_TO_M_S = 1.0 / 1000.0 / 3600.0
# Below this depth the pond drains more slowly (inlets partly exposed): smooth tail.
TAPER_M = 0.03
# Deeper water spreads over the street around the low point: the wetted area grows
# with depth, A(h) = basin · (1 + h / SPREAD_M), so storage S = basin · h · (1 + h/SPREAD_M).
SPREAD_M = 0.3
# Evaporation and infiltration from the pond surface (m/s ≈ 2 mm/h).
LOSS_M_S = 2.0 * MM_H_TO_M_S


@dataclass
class WaterSites:
    catchment_m2: np.ndarray
    basin_m2: np.ndarray
    drainage_mm_h: np.ndarray
    runoff_coeff: np.ndarray
    lag_s: np.ndarray

    @classmethod
    def from_attrs(cls, attrs: list[dict[str, float | str]]) -> WaterSites:
        def col(name: str, default: float) -> np.ndarray:
            return np.array([float(a.get(name, default)) for a in attrs], dtype=float)

        return cls(
            catchment_m2=col("catchment_m2", 5_000.0),
            basin_m2=col("basin_m2", 600.0),
            drainage_mm_h=col("drainage_mm_h", 30.0),
            runoff_coeff=col("runoff_coeff", 0.75),
            lag_s=col("lag_min", 10.0) * 60.0,
        )


class WaterModel:
    def __init__(self, sites: WaterSites, *, blockage: float | np.ndarray = 0.0):
        self.sites = sites
        n = len(sites.catchment_m2)
        self.routed_m3_s = np.zeros(n)
        self.storage_m3 = np.zeros(n)
        self.capacity_m3_s = (
            sites.drainage_mm_h * MM_H_TO_M_S * sites.catchment_m2 * (1.0 - blockage)
        )

    def step(self, intensity_mm_h: np.ndarray, dt_s: float) -> np.ndarray:
        """Advance ``dt_s`` under ``intensity_mm_h`` per site; return depth in cm."""
        s = self.sites
        inflow = s.runoff_coeff * intensity_mm_h * MM_H_TO_M_S * s.catchment_m2
        self.routed_m3_s += (inflow - self.routed_m3_s) * (1.0 - np.exp(-dt_s / s.lag_s))
        depth = self._depth_m()
        drain = self.capacity_m3_s * (1.0 - np.exp(-np.maximum(depth, 0.0) / TAPER_M))
        # Inflow goes straight down the drains up to capacity; the excess ponds and
        # the pond drains with whatever capacity is left.
        spare = np.maximum(self.capacity_m3_s - self.routed_m3_s, 0.0)
        excess = np.maximum(self.routed_m3_s - self.capacity_m3_s, 0.0)
        out = np.minimum(spare, drain) + LOSS_M_S * s.basin_m2 * (depth > 0)
        self.storage_m3 = np.maximum(self.storage_m3 + (excess - out) * dt_s, 0.0)
        return self.depth_cm()

    def _depth_m(self) -> np.ndarray:
        v = self.storage_m3 / self.sites.basin_m2  # depth if the walls were vertical
        return 0.5 * SPREAD_M * (np.sqrt(1.0 + 4.0 * v / SPREAD_M) - 1.0)

    def depth_cm(self) -> np.ndarray:
        return self._depth_m() * 100.0
