"""A short simulated storm as InfluxDB points, built the way the pipeline builds them:
contract records (gridwatch.contracts) mapped by streams.influx_sink, plus the
bridge's ``pipeline`` counters (ingest.metrics) and the stream workers' ones.

Fields that no stage writes yet are added here on purpose and listed in
``NOT_WRITTEN_YET``, so the dashboards are checked against the documented schema.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np

from gridwatch.contracts import (
    Alert,
    Assessment,
    BikeReading,
    CameraCounts,
    CameraReading,
    Category,
    Forecast,
    QcFlag,
    RainReading,
    Severity,
    StatusReading,
    TicketEvent,
    WaterReading,
    incident_key,
)
from gridwatch.influx import Point
from ingest.metrics import BridgeMetrics
from streams.influx_sink import alert_point, assessment_point, reading_point, ticket_point
from tickets.outbox import OutboxMessage, influx_line

MINUTES = 90
DISTRICTS = {"G01": "D1", "G02": "D1", "G03": "D2"}
WATER = {"wl-001": "G01", "wl-002": "G01", "wl-003": "G02", "wl-004": "G03"}
RAIN = {"rg-001": "G01", "rg-002": "G03"}
BIKE = {"bk-001": "G02", "bk-002": "G03"}
CAMERA = {"cam-001": "G01", "cam-002": "G02"}
STATUS = {"st-001": "G03"}

# (measurement, field or tag) → which stage should write it
NOT_WRITTEN_YET = {
    ("ticket", "pre_empted"): "tickets outbox relay: complaint events (ComplaintRow.pre_empted)",
    ("ticket", "lead_min"): "tickets outbox relay: complaint events (audit detail lead_min)",
    ("bike", "op_<operator>"): "streams.influx_sink.reading_point: BikeReading.by_operator",
    ("pipeline", "stage=streams lag sink_ms_p50 sink_ms_p99 readings"): "stream workers",
    ("assessment", "kind=rain f60_q50"): "streams rain nowcast",
    ("assessment", "kind=bike f30_q50 f30_q90"): "streams bike overflow forecast",
}


def _depth(t: int, peak_at: int, peak: float) -> float:
    """A storm hydrograph: nothing, a rise to ``peak`` cm, a slower recession."""
    x = (t - peak_at) / (12.0 if t < peak_at else 25.0)
    return max(0.0, peak * math.exp(-x * x) - 0.3)


def storm_points(end: datetime, seed: int = 7, *, tickets: bool = True) -> list[Point]:
    """Points for the ``MINUTES`` minutes before ``end``; ticket events as
    ``streams.influx_sink.ticket_point`` maps them unless ``tickets`` is False."""
    rng = np.random.default_rng(seed)
    start = end - timedelta(minutes=MINUTES)
    points: list[Point] = []
    for t in range(MINUTES):
        ts = start + timedelta(minutes=t)
        points += _readings_at(t, ts, rng)
    points += _alerts(start)
    if tickets:
        points += [_ticket_point(event) for event in ticket_events(start)]
    points += _pipeline(start)
    return points


def relay_ticket_lines(end: datetime) -> list[str]:
    """The same ticket events as line protocol of the tickets outbox relay
    (``tickets.outbox.influx_line``: state and event as fields, not tags)."""
    start = end - timedelta(minutes=MINUTES)
    return [
        influx_line(OutboxMessage(seq=n, event_id=e.event_id, key=e.incident_key, event=e))
        for n, e in enumerate(ticket_events(start), start=1)
    ]


def _area(grid: str) -> dict[str, str]:
    return {"grid_id": grid, "district_id": DISTRICTS[grid]}


def _readings_at(t: int, ts: datetime, rng: np.random.Generator) -> list[Point]:
    out: list[Point] = []
    common = {"ts": ts, "received_at": ts + timedelta(seconds=1), "seq": t}
    intensity = 60.0 * math.exp(-(((t - 45) / 15.0) ** 2))
    for i, (dev, grid) in enumerate(sorted(WATER.items())):
        level = _depth(t, 50 + 5 * i, 22.0 - 4 * i) + float(rng.normal(0, 0.2))
        qc = QcFlag.PASS
        if t % 17 == i:
            qc = QcFlag.SUSPECT
        elif t % 29 == i:
            qc = QcFlag.FAIL
        elif t < 2:
            qc = QcFlag.NOT_EVALUATED
        reading = WaterReading(
            device_id=dev,
            level_cm=round(max(level, 0.0), 2),
            battery_v=3.9 - 0.004 * t - 0.2 * i,
            rssi_dbm=-80.0,
            qc=qc,
            **common,
            **_area(grid),
        )
        out.append(reading_point(reading))
        out.append(assessment_point(_water_assessment(reading, t, i)))
    for dev, grid in sorted(RAIN.items()):
        rain = RainReading(
            device_id=dev,
            intensity_mm_h=round(intensity, 2),
            rain_mm=round(intensity / 60.0, 3),
            qc=QcFlag.PASS if t % 23 else QcFlag.MISSING,
            **common,
            **_area(grid),
        )
        out.append(reading_point(rain))
        ahead = 60.0 * math.exp(-(((t + 60 - 45) / 15.0) ** 2))
        out.append(
            assessment_point(
                Assessment(
                    device_id=dev,
                    kind="rain",
                    ts=ts,
                    value=rain.intensity_mm_h,
                    qc=rain.qc,
                    forecasts=[
                        Forecast(horizon_min=60, q10=ahead * 0.5, q50=ahead, q90=ahead * 1.6)
                    ],
                    **_area(grid),
                )
            )
        )
    for j, (dev, grid) in enumerate(sorted(BIKE.items())):
        bikes = int(40 + 50 * math.exp(-(((t - 30 - 20 * j) / 20.0) ** 2)))
        bike = BikeReading(
            device_id=dev,
            bikes=bikes,
            capacity=80,
            by_operator={"meituan": bikes // 2, "hellobike": bikes - bikes // 2},
            qc=QcFlag.PASS,
            **common,
            **_area(grid),
        )
        point = reading_point(bike)
        ops = {f"op_{name}": count for name, count in bike.by_operator.items()}
        out.append(replace(point, fields={**point.fields, **ops}))  # not written yet
        out.append(
            assessment_point(
                Assessment(
                    device_id=dev,
                    kind="bike",
                    ts=ts,
                    value=float(bikes),
                    risk=min(1.0, bikes / 100.0),
                    forecasts=[
                        Forecast(horizon_min=30, q10=bikes - 5, q50=bikes + 3, q90=bikes + 12)
                    ],
                    **_area(grid),
                )
            )
        )
    for k, (dev, grid) in enumerate(sorted(CAMERA.items())):
        camera = CameraReading(
            device_id=dev,
            counts=CameraCounts(
                person=int(20 + 10 * math.sin(t / 9) + k),
                vehicle=12,
                bike=3,
                vendor=int(t > 60) * 3 + k,
                garbage=int(t % 40 > 30),
                road_occupation=int(t > 70),
            ),
            water_cover=round(min(1.0, intensity / 80.0), 3),
            status="ok" if t < 80 or k else "obstructed",
            qc=QcFlag.PASS,
            **common,
            **_area(grid),
        )
        out.append(reading_point(camera))
        out.append(
            assessment_point(
                Assessment(
                    device_id=dev,
                    kind="camera",
                    ts=ts,
                    value=float(camera.counts.vendor),
                    anomaly_score=0.9 if t > 60 else 0.1,
                    risk=0.2,
                    **_area(grid),
                )
            )
        )
    if t % 5 == 0:
        for dev, grid in STATUS.items():
            status = StatusReading(
                device_id=dev,
                battery_v=3.4 - 0.002 * t,
                uptime_s=3600 + 60 * t,
                firmware="1.4.2",
                **common,
                **_area(grid),
            )
            out.append(reading_point(status))
    return out


def _water_assessment(reading: WaterReading, t: int, i: int) -> Assessment:
    forecasts = []
    for h in (15, 30, 60):
        q50 = _depth(t + h, 50 + 5 * i, 22.0 - 4 * i)
        p76 = 1 / (1 + math.exp(-(q50 - 7.6)))
        p15 = 1 / (1 + math.exp(-(q50 - 15.0)))
        forecasts.append(
            Forecast(
                horizon_min=h,
                q10=q50 * 0.7,
                q50=q50,
                q90=q50 * 1.3 + 0.5,
                p_exceed={"7.6": round(p76, 4), "15.0": round(p15, 4)},
            )
        )
    return Assessment(
        device_id=reading.device_id,
        kind="water",
        ts=reading.ts,
        grid_id=reading.grid_id,
        district_id=reading.district_id,
        value=reading.level_cm,
        qc=reading.qc,
        anomaly_score=min(1.0, reading.level_cm / 20.0),
        forecasts=forecasts,
        risk=round(forecasts[1].p_exceed["15.0"], 4),
    )


WATER_INCIDENT = incident_key("G01", Category.WATERLOGGING, "wl-001")
BIKE_INCIDENT = incident_key("G03", Category.BIKE_OVERFLOW, "bk-002")
# ticket id → (pre_empted, lead_min) of its complaint
COMPLAINT_LEADS: dict[str, tuple[int, float | None]] = {"t-1": (1, 22.0), "t-2": (0, None)}


def _alerts(start: datetime) -> list[Point]:
    at = lambda m: start + timedelta(minutes=m)  # noqa: E731
    key = WATER_INCIDENT
    return [
        alert_point(
            Alert(
                alert_id="a-1",
                incident_key=key,
                kind="forecast",
                category=Category.WATERLOGGING,
                severity=Severity.MAJOR,
                site="wl-001",
                ts=at(30),
                probability=0.8,
                expected_at=at(50),
                why="P(depth>15cm in 30 min)=0.80",
                **_area("G01"),
            )
        ),
        alert_point(
            Alert(
                alert_id="a-2",
                incident_key=key,
                kind="observed",
                category=Category.WATERLOGGING,
                severity=Severity.CRITICAL,
                site="wl-001",
                ts=at(50),
                why="depth 21 cm",
                **_area("G01"),
            )
        ),
        alert_point(
            Alert(
                alert_id="a-3",
                incident_key=incident_key("G03", Category.DEVICE_FAULT, "st-001"),
                kind="maintenance",
                category=Category.DEVICE_FAULT,
                severity=Severity.MINOR,
                site="st-001",
                ts=at(40),
                why="battery low",
                **_area("G03"),
            )
        ),
    ]


def ticket_events(start: datetime) -> list[TicketEvent]:
    """A proactive waterlogging ticket (pre-alert → open → complaint pre-empted → SLA
    breach → acknowledged → dispatched) and a reactive bike ticket, resolved."""
    w, b = WATER_INCIDENT, BIKE_INCIDENT
    rows = [
        ("t-1", w, "G01", Category.WATERLOGGING, "create", "pre_alert", 30, "forecast"),
        ("t-1", w, "G01", Category.WATERLOGGING, "promote", "open", 52, "confirmed"),
        ("t-1", w, "G01", Category.WATERLOGGING, "complaint", "open", 52.5, "complaint c-1"),
        ("t-1", w, "G01", Category.WATERLOGGING, "sla_breach", "open", 70, "ack missed"),
        ("t-1", w, "G01", Category.WATERLOGGING, "acknowledge", "acknowledged", 72, ""),
        ("t-1", w, "G01", Category.WATERLOGGING, "dispatch", "dispatched", 75, ""),
        ("t-2", b, "G03", Category.BIKE_OVERFLOW, "create", "open", 55, "reactive: bikes"),
        ("t-2", b, "G03", Category.BIKE_OVERFLOW, "complaint", "open", 56, "complaint c-2"),
        ("t-2", b, "G03", Category.BIKE_OVERFLOW, "resolve", "resolved", 80, "cleared"),
    ]
    return [
        TicketEvent(
            event_id=f"e-{n}",
            ticket_id=tid,
            incident_key=incident,
            event=event,
            state=state,  # type: ignore[arg-type]  # literal states above
            category=cat,
            severity=Severity.MAJOR,
            grid_id=grid,
            ts=start + timedelta(minutes=minute),
            reason=reason,
        )
        for n, (tid, incident, grid, cat, event, state, minute, reason) in enumerate(rows)
    ]


def _ticket_point(event: TicketEvent) -> Point:
    point = ticket_point(event)
    if event.event != "complaint":
        return point
    pre_empted, lead = COMPLAINT_LEADS[event.ticket_id]  # not written yet: NOT_WRITTEN_YET
    extra: dict[str, float | int] = {"pre_empted": pre_empted}
    if lead is not None:
        extra["lead_min"] = lead
    return replace(point, fields={**point.fields, **extra})


def _pipeline(start: datetime) -> list[Point]:
    out: list[Point] = []
    metrics = {name: BridgeMetrics(instance=name) for name in ("bridge-a", "bridge-b")}
    readings = 0
    for t in range(MINUTES):
        time_ms = int((start + timedelta(minutes=t)).timestamp() * 1000)
        for j, m in enumerate(metrics.values()):
            n = 300 + 10 * t + 50 * j
            m.received += n
            m.forwarded += n - 2
            m.records += n // 20
            if t % 10 == j:
                m.dead_letter("schema")
            if t % 15 == 3:
                m.dead_letter("unknown_device")
            for _ in range(5):
                m.ack_latency.add(4.0 + t % 7)
                m.produce_latency.add(2.0 + t % 5)
            out += m.points(time_ms)
        readings += 600 + 20 * t
        out.append(  # stream worker figures: not written yet (see NOT_WRITTEN_YET)
            Point(
                "pipeline",
                {"stage": "streams", "instance": "worker-1"},
                {
                    "readings": readings,
                    "lag": float(max(0, 40 - abs(t - 45))),
                    "sink_ms_p50": 8.0 + t % 3,
                    "sink_ms_p99": 30.0 + t % 11,
                },
                time_ms,
            )
        )
    return out
