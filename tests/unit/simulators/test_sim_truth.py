"""Ground truth: incidents, complaints and faults agree with each other and the feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from gridwatch.contracts import Category, Complaint
from simulators.engine import Simulation
from simulators.scenario import ComplaintSpec
from simulators.truth import GroundTruth, Incident, IncidentTracker, Residents

RUNS = ["storm_run", "typhoon_run", "event_run"]


@pytest.mark.parametrize("run", RUNS)
def test_every_complaint_refers_to_an_incident_after_it_became_worthy(run, request) -> None:
    sim, _ = request.getfixturevalue(run)
    truth = sim.truth
    assert truth.complaints
    by_complaint = {c: i for i in truth.incidents for c in i.complaint_ids}
    for c in truth.complaints:
        inc = by_complaint[c.complaint_id]
        assert c.category == inc.category and c.grid_id == inc.grid_id
        assert inc.complaint_worthy_at is not None
        assert c.ts.timestamp() > inc.complaint_worthy_at
        assert c.ts.timestamp() <= sim.start + sim.run_s


@pytest.mark.parametrize("run", RUNS)
def test_complaint_worthy_time_lies_inside_its_incident(run, request) -> None:
    sim, _ = request.getfixturevalue(run)
    ids = set()
    for inc in sim.truth.incidents:
        assert inc.incident_id not in ids
        ids.add(inc.incident_id)
        end = inc.end if inc.end is not None else sim.start + sim.run_s
        assert sim.start <= inc.start <= end
        if inc.complaint_worthy_at is not None:
            assert inc.start <= inc.complaint_worthy_at <= end
        if inc.first_complaint_at is not None:
            assert inc.complaint_worthy_at is not None
            assert inc.first_complaint_at >= inc.complaint_worthy_at
        else:
            assert inc.complaint_ids == []
        assert inc.grid_id in sim.registry.grids


def test_waterlogging_incidents_match_what_sensors_saw(storm_run) -> None:
    sim, messages = storm_run
    worthy = [
        i for i in sim.truth.incidents
        if i.category is Category.WATERLOGGING and i.complaint_worthy_at is not None
    ]  # fmt: skip
    assert worthy
    faulty = {f["device_id"] for f in sim.truth.faults}
    site_dev = {p.device.site: d for d, p in sim.registry.devices.items() if p.device.site}
    checked = 0
    for inc in worthy:
        dev = site_dev[inc.site]
        if dev in faulty:
            continue
        seen = [
            json.loads(m.body)["level_cm"]
            for m in messages
            if m.device_id == dev and m.body and inc.start <= m.at <= inc.complaint_worthy_at
        ]
        assert max(seen) > 14  # 15 cm ± sensor noise
        checked += 1
    assert checked > 0


def test_some_incidents_are_never_reported(typhoon_run) -> None:
    sim, _ = typhoon_run
    worthy = [i for i in sim.truth.incidents if i.complaint_worthy_at is not None]
    reported = [i for i in worthy if i.complaint_ids]
    assert 0 < len(reported) < len(worthy)


def test_the_truth_files_are_written_sorted_and_parse(storm_run, tmp_path) -> None:
    sim, _ = storm_run
    paths = sim.truth.write(tmp_path)
    incidents = [json.loads(x) for x in paths["incidents"].read_text().splitlines()]
    assert len(incidents) == len(sim.truth.incidents)
    assert set(incidents[0]) == {
        "incident_id", "incident_key", "category", "grid_id", "district_id", "site", "lon",
        "lat", "start", "complaint_worthy_at", "first_complaint_at", "end", "peak",
        "complaint_ids", "detail",
    }  # fmt: skip
    starts = [i["start"] for i in incidents]
    assert starts == sorted(starts)
    for line in paths["complaints"].read_text().splitlines():
        Complaint.model_validate_json(line)
    faults = [json.loads(x) for x in paths["faults"].read_text().splitlines()]
    assert {f["device_id"] for f in faults} - {"ghost"} <= set(sim.registry.devices)
    assert all(f["fault"] for f in faults)


def _tracker(worthy_for: float, truth: GroundTruth, calls: list[int]) -> IncidentTracker:
    return IncidentTracker(
        Category.WATERLOGGING, ["a", "b"], ["G1", "G2"], ["D", "D"], np.zeros(2), np.zeros(2),
        worthy_for, truth.incidents, lambda inc, t: calls.append(t),
    )  # fmt: skip


def test_tracker_needs_the_nuisance_held_for_its_time() -> None:
    truth, calls = GroundTruth(), []
    tr = _tracker(600, truth, calls)
    depth = [0, 6, 16, 16, 10] + [16] * 11 + [1, 0]  # 16 cm from minute 5 to 15
    for k, d in enumerate(depth):
        v = np.array([d, 0.0])
        tr.update(k * 60, v > 5, v > 2, v > 15, v)
    tr.finish()
    assert len(truth.incidents) == 1
    inc = truth.incidents[0]
    assert inc.start == 60 and inc.end == 16 * 60
    # The dip to 10 cm at minute 4 restarts the clock: worthy 10 min after minute 5.
    assert inc.complaint_worthy_at == 15 * 60 and calls == [15 * 60]
    assert inc.peak == 16


def test_tracker_hysteresis_keeps_one_incident_through_a_wobble() -> None:
    truth, calls = GroundTruth(), []
    tr = _tracker(600, truth, calls)
    for k, d in enumerate([0, 6, 4, 3, 6, 1, 0, 7]):
        v = np.array([d, d])
        tr.update(k * 60, v > 5, v > 2, v > 15, v)
    assert len(truth.incidents) == 4  # two sites × (one wobbling incident + a new one)
    assert sorted({i.start for i in truth.incidents}) == [60, 7 * 60]
    assert not calls


def test_residents_report_with_delays_or_never() -> None:
    spec = ComplaintSpec(report_probability=0.5, delay_median="5min", delay_max="30min")
    res = Residents(spec, np.random.default_rng(0), run_end=10**9)
    incidents = []
    for n in range(400):
        inc = Incident(f"i{n}", Category.WATERLOGGING, "G", "D", "s", 121.4, 31.2, start=0)
        res.nuisance(inc, 1000)
        incidents.append(inc)
    reported = [i for i in incidents if i.complaint_ids]
    assert 0.4 < len(reported) / 400 < 0.6
    delays = np.array([i.first_complaint_at - 1000 for i in reported])
    assert (delays > 0).all() and (delays <= 30 * 60 + 1).all()
    assert 120 < np.median(delays) < 600
    c = res.complaints[0]
    assert c.category is Category.WATERLOGGING and c.grid_id == "G"
    assert abs(c.lon - 121.4) < 0.002 and abs(c.lat - 31.2) < 0.002


def test_complaints_after_the_run_are_not_emitted() -> None:
    spec = ComplaintSpec(report_probability=1.0, delay_median="10min")
    res = Residents(spec, np.random.default_rng(0), run_end=1000)
    inc = Incident("i", Category.CROWDING, "G", "D", "s", 121.4, 31.2, start=0)
    res.nuisance(inc, 999)
    assert res.complaints == [] and inc.first_complaint_at is None


def test_truth_is_deterministic() -> None:
    from simulators.scenario import load_scenario

    sc = load_scenario("rush-hour-event").with_overrides(duration="1h")
    runs = []
    for _ in range(2):
        sim = Simulation(sc, np.random.default_rng(sc.seed))
        for _ in sim.messages():
            pass
        runs.append(
            (
                [i.to_dict() for i in sim.truth.incidents],
                [c.model_dump_json() for c in sim.truth.complaints],
                sim.truth.faults,
            )
        )
    assert runs[0] == runs[1]
    assert datetime.fromisoformat(runs[0][0][0]["start"]).tzinfo is not None


def test_complaint_feed_releases_complaints_in_time_order_as_the_run_advances() -> None:
    from simulators.complaints_out import ComplaintFeed

    def complaint(cid: str, ts: int) -> Complaint:
        return Complaint(
            complaint_id=cid, ts=datetime.fromtimestamp(ts, UTC), category=Category.CROWDING,
            lon=121.4, lat=31.2, grid_id="G",
        )  # fmt: skip

    source = [complaint("late", 500), complaint("early", 100)]
    got: list[str] = []
    feed = ComplaintFeed(source, lambda c: got.append(c.complaint_id))
    feed.advance(50)
    assert got == []
    feed.advance(100)
    assert got == ["early"]
    source.append(complaint("mid", 300))  # decided later in the run, due before "late"
    feed.advance(400)
    assert got == ["early", "mid"]
    feed.finish()
    assert got == ["early", "mid", "late"] and feed.delivered == 3


def test_run_scenario_calls_the_hotline_at_complaint_time(tmp_path) -> None:
    from simulators.runner import run_scenario
    from simulators.scenario import load_scenario

    sc = load_scenario("rainstorm-50y").with_overrides(duration="100min")
    calls: list[tuple[int, Complaint]] = []
    last_at = [0]

    def on_message(msg) -> None:  # type: ignore[no-untyped-def]
        last_at[0] = msg.at

    result = run_scenario(
        sc, tmp_path, on_message=on_message,
        on_complaint=lambda c: calls.append((last_at[0], c)),
    )  # fmt: skip
    assert calls and len(calls) == len(result.truth.complaints)
    for published_before, c in calls:
        # Delivered before the first message published after its time.
        assert published_before <= c.ts.timestamp()
    assert [c.ts for _, c in calls] == sorted(c.ts for _, c in calls)


def test_lasting_faults_are_device_fault_incidents(typhoon_run) -> None:
    sim, _ = typhoon_run
    lasting = [f for f in sim.truth.faults if "start" in f]
    incidents = [i for i in sim.truth.incidents if i.category is Category.DEVICE_FAULT]
    assert lasting and len(incidents) == len(lasting)
    assert {(i.site, i.detail) for i in incidents} == {
        (f["device_id"], f["fault"]) for f in lasting
    }
    for inc in incidents:
        assert inc.grid_id == sim.registry.devices[inc.site].grid_id
        assert inc.complaint_worthy_at is None  # residents do not call about sensors


def test_api_sink_posts_complaints_with_the_token_and_reports_refusals() -> None:
    import httpx

    from simulators.complaints_out import ApiComplaintSink, ComplaintDeliveryError

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if json.loads(request.content)["complaint_id"] == "bad":
            return httpx.Response(422, json={"detail": "nope"})
        return httpx.Response(200, json={"complaint_id": "x", "linked": True})

    sink = ApiComplaintSink("http://tickets:8080/", "tok", transport=httpx.MockTransport(handler))
    good = Complaint(
        complaint_id="c-1", ts=datetime.fromtimestamp(1_784_012_400, UTC),
        category=Category.WATERLOGGING, lon=121.4, lat=31.2, grid_id="G",
    )  # fmt: skip
    sink(good)
    assert seen[0].url == "http://tickets:8080/api/v1/complaints"
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert Complaint.model_validate_json(seen[0].content) == good
    assert sink.linked == 1
    with pytest.raises(ComplaintDeliveryError, match="422"):
        sink(good.model_copy(update={"complaint_id": "bad"}))
    sink.close()


def test_truth_files_load_back(storm_run, tmp_path) -> None:
    sim, _ = storm_run
    sim.truth.write(tmp_path)
    back = GroundTruth.load(tmp_path)
    assert sorted(i.to_dict()["incident_id"] for i in back.incidents) == sorted(
        i.incident_id for i in sim.truth.incidents
    )
    by_id = {i.incident_id: i for i in sim.truth.incidents}
    for inc in back.incidents:
        orig = by_id[inc.incident_id].to_dict()
        assert inc.to_dict() == orig
    assert sorted(c.complaint_id for c in back.complaints) == sorted(
        c.complaint_id for c in sim.truth.complaints
    )
    assert len(back.faults) == len(sim.truth.faults)
