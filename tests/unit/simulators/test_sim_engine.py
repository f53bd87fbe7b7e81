"""The generator: output format, determinism, contracts, faults as configured."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest

from gridwatch.contracts import READING_TYPES
from gridwatch.registry import Registry
from simulators.engine import Simulation, iter_readings
from simulators.messages import Message
from simulators.output import write_jsonl
from simulators.scenario import load_scenario, parse_scenario
from simulators.truth import GroundTruth

TOPIC_KINDS = {"water", "rain", "bike", "camera", "status"}
PAYLOAD_KEYS = {
    "water": {"ts", "level_cm", "battery_v", "rssi_dbm", "seq"},
    "rain": {"ts", "rain_mm", "intensity_mm_h", "seq"},
    "bike": {"ts", "bikes", "capacity", "by_operator", "seq"},
    "camera": {"ts", "counts", "water_cover", "status", "seq"},
    "status": {"ts", "battery_v", "uptime_s", "firmware", "seq"},
}


def values(messages: list[Message], kind: str, key: str) -> list[float]:
    """Numeric values of ``key`` in well-formed payloads of ``kind`` (faults skipped)."""
    out = []
    for m in messages:
        if m.body is not None and m.topic.startswith(f"gw/v1/{kind}/"):
            v = json.loads(m.body).get(key)
            if isinstance(v, float) and not isinstance(v, bool):
                out.append(v)
    return out


def canonical(doc: object) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_same_scenario_and_seed_give_byte_identical_jsonl(tmp_path) -> None:
    sc = load_scenario("typhoon").with_overrides(duration="30min")
    a = write_jsonl(iter_readings(sc, np.random.default_rng(sc.seed)), tmp_path / "a.jsonl")
    b = write_jsonl(iter_readings(sc, np.random.default_rng(sc.seed)), tmp_path / "b.jsonl")
    c = write_jsonl(iter_readings(sc, np.random.default_rng(sc.seed + 1)), tmp_path / "c.jsonl")
    assert a.messages == b.messages > 10_000
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    assert c.messages > 0


def test_lines_are_canonical_json_in_publish_order(storm_run, tmp_path) -> None:
    _sim, messages = storm_run
    write_jsonl(iter(messages), tmp_path / "m.jsonl")
    last = ""
    raw = 0
    for n, line in enumerate((tmp_path / "m.jsonl").read_text(encoding="utf-8").splitlines()):
        doc = json.loads(line)
        assert canonical(doc) == line
        assert doc["at"].endswith("Z") and doc["at"] >= last
        last = doc["at"]
        if "raw_b64" in doc:
            raw += 1
            assert set(doc) == {"at", "raw_b64", "topic"}
        else:
            assert set(doc) == {"at", "payload", "topic"}
        if n % 5 == 0 or "raw_b64" in doc:
            assert Message.from_line(line).line() == line
    assert raw > 0


def test_payloads_are_what_devices_send_and_valid_records(storm_run) -> None:
    sim, messages = storm_run
    reg: Registry = sim.registry
    kinds: Counter[str] = Counter()
    bad_log = {(f["device_id"], f["seq"]) for f in sim.truth.faults if f["fault"] == "malformed"}
    checked = 0
    for msg in messages:
        _, _, kind, dev = msg.topic.split("/")
        if (dev, None) in bad_log or msg.body is None:
            continue
        payload = json.loads(msg.body)
        place = reg.get(dev)
        if place is None or place.device.kind != kind or set(payload) != PAYLOAD_KEYS[kind]:
            # Only injected faults may break the shape.
            assert any(
                f["device_id"] == dev for f in sim.truth.faults if f["fault"] == "malformed"
            ) or dev.startswith("ghost-")
            continue
        kinds[kind] += 1
        if (
            isinstance(payload.get("ts"), str)
            and abs(datetime.fromisoformat(payload["ts"]).timestamp() - msg.at) > 7 * 86400
        ):
            continue  # stale/future-ts faults
        fields = {
            **payload,
            "device_id": dev,
            "ts": datetime.fromisoformat(payload["ts"]),
            "received_at": datetime.fromtimestamp(msg.at, UTC),
            "grid_id": place.grid_id,
            "district_id": place.district_id,
        }
        if kind == "camera":
            fields["counts"] = (
                READING_TYPES["camera"]
                .model_fields["counts"]
                .annotation.model_validate(payload["counts"])
            )  # type: ignore[union-attr]
        try:
            READING_TYPES[kind].model_validate(fields)
        except Exception:
            # number_as_string / bool_as_number faults are schema errors on purpose.
            assert any(f["device_id"] == dev for f in sim.truth.faults if f["fault"] == "malformed")
            continue
        checked += 1
    assert set(kinds) == TOPIC_KINDS
    assert checked > 0.95 * len(messages)


def test_every_device_reports_at_its_interval_with_increasing_seq(storm_run) -> None:
    sim, messages = storm_run
    seqs: dict[str, list[int]] = defaultdict(list)
    for msg in messages:
        if msg.body is not None and msg.topic.startswith("gw/v1/water/"):
            seqs[msg.device_id].append(json.loads(msg.body).get("seq"))
    # 2 hours at one report a minute, less faults.
    counts = np.array([len(v) for v in seqs.values()])
    assert np.median(counts) == pytest.approx(120, abs=2)
    faulty = {
        f["device_id"]
        for f in sim.truth.faults
        if f["fault"] in ("out_of_order", "duplicate", "malformed")
    }
    for dev, s in seqs.items():
        if dev not in faulty:
            assert s == sorted(s) and len(set(s)) == len(s), dev


def test_the_storm_floods_sensors_and_cameras_see_water(storm_run) -> None:
    sim, messages = storm_run
    levels = values(messages, "water", "level_cm")
    assert max(levels) > 30
    assert max(values(messages, "camera", "water_cover")) > 0.5
    assert sum(values(messages, "rain", "rain_mm")) / len(sim.groups["rain"].ids) > 40


def test_storm_reaches_rain_gauges_in_order_of_distance_along_its_path(storm_run) -> None:
    sim, messages = storm_run
    spec = sim.scenario.weather.storms[0]
    first: dict[str, int] = {}
    for m in messages:
        if m.body and "/rain/" in m.topic and m.device_id not in first:
            p = json.loads(m.body)
            if (
                isinstance(p.get("rain_mm"), float)
                and p["rain_mm"] > 0
                and m.at == datetime.fromisoformat(p["ts"]).timestamp()
            ):
                first[m.device_id] = m.at
    g = sim.groups["rain"]
    x, y = sim.city.xy_m(g.lon, g.lat)
    theta = np.radians(spec.direction_deg)
    along = {d: x[i] * np.sin(theta) + y[i] * np.cos(theta) for i, d in enumerate(g.ids)}
    devs = sorted(first)
    a = np.array([along[d] for d in devs])
    t = np.array([first[d] for d in devs])
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    rho = np.corrcoef(rank(a), rank(t))[0, 1]
    assert len(devs) >= 10 and rho > 0.8


def test_fault_rates_follow_the_scenario(typhoon_run) -> None:
    sim, messages = typhoon_run
    kinds = Counter(f["fault"] for f in sim.truth.faults)
    for fault in ("stuck", "drift", "dropout", "battery_death", "clock_skew", "spike",
                  "duplicate", "out_of_order", "malformed"):  # fmt: skip
        assert kinds[fault] > 0, fault
    n_water = len(sim.groups["water"].ids)
    assert kinds["dropout"] < 0.3 * len(sim.city.devices)
    assert kinds["drift"] <= 0.1 * n_water
    dup = kinds["duplicate"] / len(messages)
    assert 0.005 < dup < 0.02  # typhoon.yaml: 1 %


def test_dead_batteries_fall_silent(typhoon_run) -> None:
    sim, messages = typhoon_run
    dead = {
        f["device_id"]: f["detail"]["dead_at"]
        for f in sim.truth.faults
        if f["fault"] == "battery_death"
    }
    assert dead
    last: dict[str, tuple[int, float]] = {}
    for m in messages:
        if m.device_id in dead and m.body and "battery_v" in m.body:
            last[m.device_id] = (m.at, json.loads(m.body)["battery_v"])
    for dev, when in dead.items():
        if dev in last:
            at, volts = last[dev]
            assert at <= datetime.fromisoformat(when).timestamp() + 600  # late copies only
            assert volts < 3.9


def test_stuck_sensors_repeat_their_value(typhoon_run) -> None:
    sim, messages = typhoon_run
    stuck = [f for f in sim.truth.faults if f["fault"] == "stuck" and f["kind"] == "water"]
    assert stuck
    f = stuck[0]
    a = datetime.fromisoformat(f["start"]).timestamp()
    b = datetime.fromisoformat(f["end"]).timestamp() if f["end"] else float("inf")
    values = [
        json.loads(m.body)["level_cm"]
        for m in messages
        if m.device_id == f["device_id"]
        and m.body
        and "/water/" in m.topic
        and a <= m.at < b
        and isinstance(json.loads(m.body).get("level_cm"), float)
    ]
    if len(values) >= 2:
        assert len(set(values)) == 1


def test_start_can_be_moved(tmp_path) -> None:
    sc = load_scenario("dry-weekday").with_overrides(duration="5min", size="tiny")
    start = datetime(2030, 1, 1, tzinfo=UTC)
    msgs = list(iter_readings(sc, np.random.default_rng(1), start))
    assert msgs[0].at == int(start.timestamp())
    assert json.loads(msgs[0].body)["ts"] == "2030-01-01T00:00:00Z"


def test_iter_readings_fills_the_truth_it_is_given() -> None:
    sc = load_scenario("typhoon").with_overrides(duration="30min")
    truth = GroundTruth()
    n = sum(1 for _ in iter_readings(sc, np.random.default_rng(sc.seed), truth=truth))
    assert n > 0 and truth.incidents and truth.faults


def test_a_metro_event_overflows_its_bikes_and_crowds_its_cameras(event_run) -> None:
    sim, _ = event_run
    cats = Counter(i.category.value for i in sim.truth.incidents)
    assert cats["crowding"] > 0 and cats["bike_overflow"] > 0
    station_bikes = {sim.groups["bike"].ids[i] for i in np.flatnonzero(sim.events[0][3])}
    overflow_sites = {i.site for i in sim.truth.incidents if i.category.value == "bike_overflow"}
    assert {f"site-{b}" for b in station_bikes} & overflow_sites


def test_unknown_event_station_is_a_scenario_error() -> None:
    from simulators.scenario import ScenarioError, parse_scenario

    sc = parse_scenario(
        "name: t\nstart: 2026-07-14T07:00:00Z\nduration: 1h\ncity: {size: tiny}\n"
        "events: [{station: M999, start: 10min, duration: 20min, attendance: 100}]\n"
    )
    with pytest.raises(ScenarioError, match="no station 'M999'"):
        Simulation(sc, np.random.default_rng(0))


def test_typhoon_wind_loses_lora_uplinks_and_their_seq_is_missing(typhoon_run) -> None:
    sim, messages = typhoon_run
    lost = {(f["device_id"], f["seq"]) for f in sim.truth.faults if f["fault"] == "packet_loss"}
    assert lost
    assert {d.split("-")[0] for d, _ in lost} <= {"wl", "rg", "gw"}  # LoRa devices only
    sent = set()
    for m in messages:
        if m.body is not None:
            seq = json.loads(m.body).get("seq")
            sent.add((m.device_id, seq))
    assert not (lost & sent)


def test_wind_keeps_people_indoors() -> None:
    def people(wind: str) -> int:
        sc = parse_scenario(
            "name: w\nstart: 2026-07-13T23:00:00Z\nduration: 30min\n"
            f"city: {{size: small, seed: 7}}\nweather: {{wind: {wind}}}\n"
        )
        total = 0
        for m in iter_readings(sc, np.random.default_rng(3)):
            if m.body and "/camera/" in m.topic:
                total += json.loads(m.body)["counts"]["person"]
        return total

    assert people("30 m/s") < 0.5 * people("0 m/s")


def test_bike_payloads_add_up_and_cameras_count_plausibly(event_run) -> None:
    sim, messages = event_run
    faulty = {
        (f["device_id"], f["seq"]) for f in sim.truth.faults if f["fault"] in ("spike", "malformed")
    }
    bikes = cams = 0
    for m in messages:
        if m.body is None or m.device_id.startswith("ghost"):
            continue
        p = json.loads(m.body)
        if (m.device_id, p.get("seq")) in faulty:
            continue
        if "/bike/" in m.topic:
            assert p["bikes"] == sum(p["by_operator"].values())
            assert 0 <= p["bikes"] <= 5 * p["capacity"]
            bikes += 1
        if "/camera/" in m.topic:
            c = p["counts"]
            assert all(isinstance(v, int) and v >= 0 for v in c.values())
            assert 0.0 <= p["water_cover"] <= 1.0 and p["status"] == "ok"
            cams += 1
    assert bikes > 1000 and cams > 10_000


def test_paced_runs_at_the_asked_speed() -> None:
    import time

    from simulators.runner import paced

    msgs = [Message(1_000 + 10 * i, "gw/v1/water/a", "{}") for i in range(6)]
    t0 = time.monotonic()
    assert list(paced(iter(msgs), None)) == msgs
    fast = time.monotonic() - t0
    t0 = time.monotonic()
    assert list(paced(iter(msgs), 500.0)) == msgs  # 50 s of event time in 0.1 s
    paced_s = time.monotonic() - t0
    assert fast < 0.05 and 0.09 <= paced_s < 1.0
