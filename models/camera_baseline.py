"""Camera baselines: expected counts per hour-of-week per camera, and incident
probabilities for street vendors, exposed garbage, road occupation and crowding.

Per camera and class the state holds, for each of the 168 hours of the week, an EW mean
and EW variance of the counts, a reading count and when it first learned (a fixed
168 × 4 × 4 array), plus a short EW smoothing of the live count (so one frame does not
make an incident). A reading
touches one hour-of-week *slot* only, so a stream job may keep each slot (16 numbers) as
its own table entry instead of rewriting 2,688 numbers per reading (``step_slots``).
Each reading is scored first:
``z = (smoothed − mean) / sqrt(var + mean + 0.25)`` (Poisson-like floor, never 0), and
``P(incident) = Φ(z − z0)`` once the hour-of-week bin has seen ``min_count`` readings
(before that, a prior mean ``prior_mean`` per class is used; a class without a prior —
people: what is a crowd depends on the site and the hour — is judged only once its bin
is ready *and* first learned at least ``history_s`` earlier, i.e. in an earlier week: a
bin learned minutes ago in a downpour is not the street's normal), then the bin learns
(slower while P > 0.5, so a lasting incident is not absorbed within the hour).
Camera readings whose status is not ``ok`` should be sent as NaN (not learned, P = 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from models.errors import StateError
from models.state import rounds

CLASSES: tuple[str, ...] = ("vendor", "garbage", "road_occupation", "person")
INCIDENTS: dict[str, str] = {
    "vendor": "street_vendor",
    "garbage": "exposed_garbage",
    "road_occupation": "road_occupation",
    "person": "crowding",
}
HOURS = 168


@dataclass(frozen=True)
class CameraParams:
    alpha: float = 0.02  # per reading: ~12 readings an hour share one bin
    incident_damping: float = 0.2  # learn slower while an incident is likely
    alpha_live: float = 0.4
    min_count: float = 3.0
    z0: float = 2.0
    # vendors, garbage, road occupation are rare anywhere; a crowd is relative to the
    # site and hour, so people have no prior (NaN): judged once the bin has learned
    prior_mean: tuple[float, ...] = (0.1, 0.1, 0.1, float("nan"))
    history_s: float = 6 * 86400.0  # a class without a prior: bin first learned this long ago


def hour_of_week(ts: np.ndarray) -> np.ndarray:
    ts = np.asarray(ts, dtype=float)
    days = np.floor(ts / 86400.0).astype(np.int64)
    weekday = (days + 3) % 7  # Monday = 0
    hour = np.floor(np.mod(ts, 86400.0) / 3600.0).astype(np.int64)
    return weekday * 24 + hour


def initial(n: int) -> dict[str, np.ndarray]:
    """Baseline arrays for ``n`` cameras."""
    c = len(CLASSES)
    return {
        "mean": np.zeros((n, HOURS, c)),
        "var": np.zeros((n, HOURS, c)),
        "count": np.zeros((n, HOURS, c)),
        "first": np.full((n, HOURS, c), np.nan),  # when the bin first learned
        "live": np.full((n, c), np.nan),
        "t_last": np.full(n, np.nan),
    }


SLOT_FIELDS = ("mean", "var", "count", "first")


def empty_slots(s: int) -> dict[str, np.ndarray]:
    """``s`` unlearned hour-of-week slots (each field (s, 4))."""
    c = len(CLASSES)
    one = initial(1)
    return {k: np.broadcast_to(one[k][0, 0], (s, c)).copy() for k in SLOT_FIELDS}


CAMERA_FIELDS = ("live", "t_last")


def to_dict(arrays: Mapping[str, np.ndarray], i: int) -> dict[str, Any]:
    """Camera ``i``'s state as JSON-able lists (for a Faust table)."""
    return {k: np.asarray(v[i]).tolist() for k, v in arrays.items()}


def from_dicts(docs: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    want = initial(1)
    try:
        out = {k: np.array([np.asarray(d[k], dtype=float) for d in docs]) for k in want}
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"camera baseline state cannot be restored: {exc}") from exc
    for k, v in want.items():
        if out[k].shape[1:] != v.shape[1:]:
            raise StateError(f"camera baseline state: {k} has shape {out[k].shape[1:]}")
    return out


def _kernel(
    cam: dict[str, np.ndarray],
    slots: dict[str, np.ndarray],
    rows: np.ndarray,
    slot_rows: np.ndarray,
    ts: np.ndarray,
    counts: np.ndarray,
    p: CameraParams,
) -> np.ndarray:
    """Score then learn for one reading per camera row (its hour-of-week slot at
    ``slot_rows``); mutates ``cam`` and ``slots`` in place; returns probs."""
    ok_t = np.isfinite(ts) & ~(ts <= cam["t_last"][rows])
    x = counts.astype(float)
    ok = ok_t[:, None] & np.isfinite(x)
    xv = np.where(ok, np.maximum(x, 0.0), 0.0)
    mean = slots["mean"][slot_rows]  # (m, C)
    var = slots["var"][slot_rows]
    cnt = slots["count"][slot_rows]
    first = slots["first"][slot_rows]
    live_prev = cam["live"][rows]
    live = np.where(np.isfinite(live_prev), live_prev + p.alpha_live * (xv - live_prev), xv)
    prior = np.asarray(p.prior_mean, dtype=float)[None, :]
    ready = cnt >= p.min_count
    # a class with a prior is judged at once; one without, once its bin learned long ago
    known = ready & (ts[:, None] - first >= p.history_s)
    judged = ok & (np.isfinite(prior) | known)
    mu = np.where(ready, mean, np.maximum(mean, np.nan_to_num(prior)))
    sd = np.sqrt(np.where(ready, var, 0.0) + mu + 0.25)
    prob = np.where(judged, ndtr((live - mu) / sd - p.z0), 0.0)
    a = np.where(cnt < 1.0 / p.alpha, 1.0 / (cnt + 1.0), p.alpha)
    a = np.where(prob > 0.5, a * p.incident_damping, a)
    dev = xv - mean
    new_mean = mean + a * dev
    new_var = (1 - a) * (var + a * dev * dev)
    slots["mean"][slot_rows] = np.where(ok, new_mean, mean)
    slots["var"][slot_rows] = np.where(ok, new_var, var)
    slots["count"][slot_rows] = np.where(ok, cnt + 1.0, cnt)
    slots["first"][slot_rows] = np.where(ok & ~np.isfinite(first), ts[:, None], first)
    cam["live"][rows] = np.where(ok, live, live_prev)
    cam["t_last"][rows] = np.where(ok_t, ts, cam["t_last"][rows])
    return prob


def step_slots(
    cameras: Mapping[str, np.ndarray],
    slots: Mapping[str, np.ndarray],
    camera_index: np.ndarray,
    slot_index: np.ndarray,
    ts: np.ndarray,
    counts: np.ndarray,
    params: CameraParams,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Like ``step_batch`` on a compact state: ``cameras`` holds ``live`` (n, 4) and
    ``t_last`` (n,), ``slots`` holds ``mean``/``var``/``count``/``first`` (s, 4) for the
    hour-of-week slots the readings fall in; ``slot_index`` gives each reading's slot
    row (the caller maps camera and ``hour_of_week(ts)`` to it). Returns new camera and
    slot states and P(incident) (m, 4)."""
    cam = {k: np.array(cameras[k], dtype=float) for k in CAMERA_FIELDS}
    sl = {k: np.array(slots[k], dtype=float) for k in SLOT_FIELDS}
    camera_index = np.asarray(camera_index, dtype=np.int64)
    slot_index = np.asarray(slot_index, dtype=np.int64)
    ts = np.asarray(ts, dtype=float)
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    probs = np.zeros(counts.shape)
    for pos in rounds(camera_index):
        probs[pos] = _kernel(
            cam, sl, camera_index[pos], slot_index[pos], ts[pos], counts[pos], params
        )
    return cam, sl, probs


def step_batch(
    states: Mapping[str, np.ndarray],
    camera_index: np.ndarray,
    ts: np.ndarray,
    counts: np.ndarray,
    params: CameraParams,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``counts`` (m, 4) in ``CLASSES`` order (vendor, garbage, road_occupation, person);
    returns new states and P(incident) (m, 4) — columns map to ``INCIDENTS``."""
    n = np.asarray(states["t_last"]).shape[0]
    camera_index = np.asarray(camera_index, dtype=np.int64)
    ts = np.asarray(ts, dtype=float)
    # every camera's 168 slots as rows of one (n·168, 4) array per field
    flat = {k: np.asarray(states[k], dtype=float).reshape(n * HOURS, -1) for k in SLOT_FIELDS}
    h = hour_of_week(np.where(np.isfinite(ts), ts, 0.0))
    cam, sl, probs = step_slots(
        states, flat, camera_index, camera_index * HOURS + h, ts, counts, params
    )
    out = {k: v.reshape(n, HOURS, -1) for k, v in sl.items()}
    return {**out, **cam}, probs


def expected(
    states: Mapping[str, np.ndarray], camera_index: np.ndarray, ts: np.ndarray
) -> np.ndarray:
    """Expected counts (m, 4) for each camera at the hour-of-week of ``ts``."""
    h = hour_of_week(ts)
    return states["mean"][np.asarray(camera_index), h, :]
