"""One time step of the simulation: physics for every device, then the reports due.

Split from ``engine.py`` to keep each module short; ``tick`` reads and updates the
``Simulation``'s arrays and returns the messages published at this step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gridwatch.contracts import Category
from simulators.crowds import camera_rates
from simulators.faults import KindFaults, malformed
from simulators.messages import TEMPLATES, Message
from simulators.scenario import MALFORMED_CLASSES

if TYPE_CHECKING:
    from simulators.engine import Simulation, _Group

WATER_START_CM, WATER_STAY_CM = 5.0, 2.0
LORA_KINDS = ("water", "rain", "status")
CROWD_START, CROWD_STAY = 3.0, 2.5


def _event_state(sim: Simulation, rel: int) -> None:
    """Bike flows and crowd boosts of special events at ``rel`` seconds."""
    sim.bikes.event_flow[:] = 0.0
    sim.cam.event_boost[:] = 0.0
    for start, end, attendance, bikes, cams in sim.events:
        # About 20 % of the audience rides a shared bike to the station's exits,
        # shared among its parking sites by capacity.
        cap = sim.bike_cap[bikes]
        wave = attendance * 0.2 * cap / max(float(cap.sum()), 1.0)
        if start - 2700 <= rel < start:
            sim.bikes.event_flow[bikes] += wave / 2700
        elif end <= rel < end + 2400:
            sim.bikes.event_flow[bikes] -= wave / 2400
        level = attendance / 1000.0
        if start - 3600 <= rel < start:
            boost = level * (rel - (start - 3600)) / 3600
        elif start <= rel < end:
            boost = 0.3 * level
        elif end <= rel < end + 1800:
            boost = 1.2 * level
        else:
            boost = 0.0
        sim.cam.event_boost[cams] += boost


def _active_counts(sim: Simulation, rel: int) -> dict[Category, np.ndarray]:
    """Per camera, how many scheduled incidents (vendors: how many stalls) are on now."""
    n = sim.groups["camera"].n
    out = {}
    for cat, (cams, starts, ends, weight) in sim.schedule_arrays.items():
        on = (starts <= rel) & (rel < ends)
        out[cat] = np.bincount(cams[on], weights=weight[on], minlength=n).astype(np.int64)
    return out


def tick(sim: Simulation, k: int, rel: int, t: int) -> list[Message]:
    sc = sim.scenario
    dt = sim.tick
    local = t + sc.utc_offset_h * 3600
    local_hour = (local % 86400) / 3600.0
    weekday = int((local // 86400 + 3) % 7)  # 1970-01-01 was a Thursday
    rain = sim.rain.intensity(rel)
    sl = sim.slices
    depth = sim.water.step(rain[sl["water"]], dt)
    sim.rain_acc += rain[sl["rain"]] * dt / 3600.0
    _event_state(sim, rel)
    # Gales keep people indoors and off bikes, and LoRa uplinks get lost in the storm.
    wind = sc.weather.wind
    calm = 1.0 / (1.0 + max(wind - 8.0, 0.0) / 10.0)
    loss = min(max(wind - 15.0, 0.0) / 250.0, 0.1)
    sim.bikes.step(dt, local_hour, weekday, rain[sl["bike"]], damp=calm)
    person_rate, vehicle_rate = camera_rates(sim.cam, local_hour, weekday, rain[sl["camera"]])
    person_rate = person_rate * calm
    normal_rate = sim.cam.person_per_min
    active = _active_counts(sim, rel)
    bikes_now = sim.bikes.bikes()
    # -- ground truth -----------------------------------------------------------------
    cs = sc.complaints
    tr = sim.trackers
    tr[Category.WATERLOGGING].update(
        t, depth > WATER_START_CM, depth > WATER_STAY_CM, (depth > cs.water_cm) & sim.exposed, depth
    )
    cap = sim.bike_cap
    ratio = bikes_now / cap
    tr[Category.BIKE_OVERFLOW].update(t, ratio > 1.0, ratio > 0.95, ratio > cs.bike_ratio, ratio)
    for cat in (Category.STREET_VENDOR, Category.EXPOSED_GARBAGE, Category.ROAD_OCCUPATION):
        on = active[cat] > 0
        tr[cat].update(t, on, on, on, active[cat].astype(float))
    crowd = person_rate / np.maximum(normal_rate, 1e-9)
    tr[Category.CROWDING].update(
        t, crowd > CROWD_START, crowd > CROWD_STAY, crowd > CROWD_START, crowd
    )
    # -- reports ------------------------------------------------------------------------
    out: list[Message] = []
    ts_text = sim.ts(t)
    for kind in ("water", "rain", "bike", "camera", "status"):
        g = sim.groups[kind]
        if g.n == 0:
            continue
        idx = g.due(k)
        if idx.size == 0:
            continue
        f = sim.plan.kinds[kind]
        alive = rel < f.death_s[idx]
        idx = idx[alive]
        g.seq[idx] += 1
        if kind == "rain":
            acc = sim.rain_acc[idx]
            tipped = np.floor(acc / 0.2 + 1e-9) * 0.2
            sim.rain_acc[idx] = acc - tipped
        silent = f.in_window(f.dropout, idx, rel)
        if loss > 0 and kind in LORA_KINDS:
            lost = ~silent & (sim.r_msg.random(idx.size) < loss)
            at = sim.ts(t)
            for i in idx[lost].tolist():
                sim.truth.faults.append(
                    {"fault": "packet_loss", "device_id": g.ids[i], "kind": kind, "at": at,
                     "seq": int(g.seq[i]), "detail": {"wind_m_s": sc.weather.wind}}
                )  # fmt: skip
            silent = silent | lost
        idx = idx[~silent]
        if idx.size == 0:
            continue
        m = idx.size
        rows: list[tuple[Any, ...]]
        spike = sim.r_msg.random(m) < sc.faults.spike if sc.faults.spike > 0 else np.zeros(m, bool)
        if kind == "water":
            level = depth[idx] + sim.r_noise.normal(0.0, 0.3, m)
            drifting = f.in_window(f.drift, idx, rel)
            if drifting.any():
                level = level + np.where(
                    drifting, f.drift_cm_h[idx] * (rel - f.drift[0][idx]) / 3600.0, 0.0
                )
            level = level + spike * sim.r_noise.uniform(50, 300, m)
            # An ultrasonic sensor cannot see water closer than its blanking distance.
            level = np.minimum(level, sim.mount_cm[idx] - 20.0)
            batt = _battery(sim, "water", idx, rel)
            rssi = sim.rssi[idx] + sim.r_noise.normal(0.0, 2.0, m) - 0.02 * rain[sl["water"]][idx]
            rows = list(
                zip(
                    np.round(batt, 3).tolist(),
                    np.round(level, 1).tolist(),
                    np.round(rssi, 1).tolist(),
                    strict=True,
                )
            )
        elif kind == "rain":
            # rain_mm: what the 0.2 mm tipping bucket counted since the last report;
            # intensity_mm_h: the gauge's own smoothed rate, with a few % of error.
            tipped_r = np.round(tipped[~silent] + spike * 50.0, 1)
            true_i = rain[sl["rain"]][idx]
            rate = np.maximum(true_i * (1.0 + sim.r_noise.normal(0.0, 0.05, m)), 0.0)
            rows = list(
                zip(
                    np.round(rate + spike * 3000.0, 1).tolist(),
                    tipped_r.tolist(),
                    strict=True,
                )
            )
        elif kind == "bike":
            ops = np.rint(sim.bikes.ops[idx]).astype(np.int64)
            total = ops.sum(axis=1) * np.where(spike, 4, 1)
            rows = list(
                zip(
                    total.tolist(),
                    ops[:, 2].tolist(),
                    ops[:, 1].tolist(),
                    ops[:, 0].tolist(),
                    cap[idx].astype(np.int64).tolist(),
                    strict=True,
                )
            )
        elif kind == "camera":
            r = sim.r_noise
            person = r.poisson(person_rate[idx]) + spike * 500
            vehicle = r.poisson(vehicle_rate[idx])
            bike = r.poisson(0.15 * person_rate[idx])
            vendor = r.binomial(active[Category.STREET_VENDOR][idx], 0.9)
            garbage = r.binomial(active[Category.EXPOSED_GARBAGE][idx], 0.85)
            occupation = r.binomial(active[Category.ROAD_OCCUPATION][idx], 0.9)
            near = sim.cam_water[idx]
            d = np.where(near >= 0, depth[np.maximum(near, 0)], 0.0)
            cover = np.where(
                near >= 0, np.clip(d / 30.0 + r.normal(0.0, 0.02, m) * (d > 1), 0.0, 1.0), 0.0
            )
            rows = list(
                zip(
                    bike.tolist(),
                    garbage.tolist(),
                    person.tolist(),
                    occupation.tolist(),
                    vehicle.tolist(),
                    vendor.tolist(),
                    np.round(cover, 2).tolist(),
                    strict=True,
                )
            )
        else:  # status
            batt = _battery(sim, "status", idx, rel)
            firmware = [str(g.places[i].device.attrs.get("firmware", "1.0.0")) for i in idx]
            rows = list(
                zip(np.round(batt, 3).tolist(), firmware, (t - sim.boot[idx]).tolist(), strict=True)
            )
        _stuck(g, f, idx, rel, rows)
        ts_list = [ts_text] * m
        skewed = f.skew_s[idx]
        for j in np.flatnonzero(skewed):
            ts_list[j] = sim.ts(t + int(skewed[j]))
        bodies = _format(kind, rows, g.seq[idx].tolist(), ts_list)
        _emit(sim, kind, g, idx, bodies, spike, t, out)
    return out


def _battery(sim: Simulation, kind: str, idx: np.ndarray, rel: int) -> np.ndarray:
    f = sim.plan.kinds[kind]
    base = sim.battery[kind][idx] - 0.002 * rel / 86400.0
    dying = np.isfinite(f.death_s[idx])
    if not dying.any():
        return base
    a = np.where(dying, f.decline_s[idx], 0.0)
    b = np.where(dying, f.death_s[idx], 1.0)
    frac = np.where(dying, np.clip((rel - a) / np.maximum(b - a, 1.0), 0.0, 1.0), 0.0)
    return base - frac * (base - 3.0)


def _stuck(
    g: _Group, f: KindFaults, idx: np.ndarray, rel: int, rows: list[tuple[Any, ...]]
) -> None:
    """Devices in a stuck window repeat the values they had when it began."""
    stuck = f.in_window(f.stuck, idx, rel)
    if g.frozen:
        for i in list(g.frozen):
            if not (f.stuck[0][i] <= rel < f.stuck[1][i]):
                del g.frozen[i]
    for j in np.flatnonzero(stuck):
        i = int(idx[j])
        frozen = g.frozen.setdefault(i, rows[j])
        rows[j] = frozen


def _format(kind: str, rows: list[tuple], seq: list[int], ts: list[str]) -> list[str]:
    tpl = TEMPLATES[kind]
    if kind == "camera":
        return [tpl % (*r[:6], s, x, r[6]) for r, s, x in zip(rows, seq, ts, strict=True)]
    if kind == "status":
        return [tpl % (r[0], r[1], s, x, r[2]) for r, s, x in zip(rows, seq, ts, strict=True)]
    return [tpl % (*r, s, x) for r, s, x in zip(rows, seq, ts, strict=True)]


def _emit(
    sim: Simulation,
    kind: str,
    g: _Group,
    idx: np.ndarray,
    bodies: list[str],
    spike: np.ndarray,
    t: int,
    out: list[Message],
) -> None:
    """Send the bodies, applying duplicate, out-of-order and malformed faults."""
    fs = sim.scenario.faults
    m = len(bodies)
    topics = g.topics
    if not (fs.duplicate or fs.out_of_order or fs.malformed or spike.any()):
        out.extend([Message(t, topics[i], b) for i, b in zip(idx.tolist(), bodies, strict=True)])
        return
    r = sim.r_msg
    dup = r.random(m) < fs.duplicate if fs.duplicate else np.zeros(m, bool)
    late = r.random(m) < fs.out_of_order if fs.out_of_order else np.zeros(m, bool)
    bad = r.random(m) < fs.malformed if fs.malformed else np.zeros(m, bool)
    special = dup | late | bad | spike
    ids = idx.tolist()
    batch: list[Message | None] = [
        Message(t, topics[i], b) for i, b in zip(ids, bodies, strict=True)
    ]
    at = sim.ts(t)
    log = sim.truth.faults
    for j in np.flatnonzero(special).tolist():
        i, body = ids[j], bodies[j]
        dev = g.ids[i]
        seq = int(g.seq[i])
        if spike[j]:
            log.append({"fault": "spike", "device_id": dev, "kind": kind, "at": at, "seq": seq})
        if bad[j]:
            cls = sim.classes[int(r.integers(len(sim.classes)))]
            topic, raw = malformed(cls, kind, dev, body, t, sim.ts, r)
            log.append(
                {
                    "fault": "malformed",
                    "device_id": dev,
                    "kind": kind,
                    "at": at,
                    "seq": seq,
                    "detail": {
                        "class": cls,
                        "expected_reason": MALFORMED_CLASSES[cls],
                        "topic": topic,
                    },
                }
            )
            batch[j] = Message.from_bytes(t, topic, raw)
            continue
        if late[j]:
            delay = int(r.integers(30, 600))
            sim.push_delayed(t + delay, Message(t + delay, topics[i], body))
            log.append(
                {
                    "fault": "out_of_order",
                    "device_id": dev,
                    "kind": kind,
                    "at": at,
                    "seq": seq,
                    "detail": {"delay_s": delay},
                }
            )
            batch[j] = None
        if dup[j]:
            delay = int(r.integers(1, 30))
            sim.push_delayed(t + delay, Message(t + delay, topics[i], body))
            log.append(
                {
                    "fault": "duplicate",
                    "device_id": dev,
                    "kind": kind,
                    "at": at,
                    "seq": seq,
                    "detail": {"delay_s": delay},
                }
            )
    out.extend([msg for msg in batch if msg is not None])
