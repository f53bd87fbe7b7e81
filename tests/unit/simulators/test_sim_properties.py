"""Property tests of the parsers and the message format, and feed-level behaviour."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.engine import Simulation
from simulators.messages import Message
from simulators.replay import ReplayError, parse_time
from simulators.scenario import load_scenario

TOPIC = st.builds(
    lambda k, d: f"gw/v1/{k}/{d}",
    st.sampled_from(["water", "rain", "bike", "camera", "status"]),
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
)


@given(at=st.integers(0, 4_102_444_800), topic=TOPIC, raw=st.binary(max_size=300))
def test_any_payload_bytes_survive_the_jsonl_round_trip(at: int, topic: str, raw: bytes) -> None:
    msg = Message.from_bytes(at, topic, raw)
    line = msg.line()
    assert "\n" not in line
    doc = json.loads(line)
    assert list(doc) == sorted(doc)
    back = Message.from_line(line)
    assert back.payload_bytes() == raw and back.at == at and back.topic == topic


@given(
    doc=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(10**12), 10**12)
        | st.text(max_size=8)
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_canonical_json_payloads_stay_json(doc: object) -> None:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    msg = Message.from_bytes(0, "gw/v1/water/a", text.encode())
    assert msg.body == text and msg.raw is None


@given(st.text(max_size=40))
def test_parse_time_raises_only_replay_error(text: str) -> None:
    try:
        value = parse_time(text)
    except ReplayError:
        return
    assert isinstance(value, float)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_any_seed_gives_a_consistent_tiny_run(seed: int) -> None:
    sc = load_scenario("typhoon").with_overrides(duration="20min", size="tiny", seed=seed)
    sim = Simulation(sc, np.random.default_rng(seed))
    msgs = list(sim.messages())
    assert msgs and [m.at for m in msgs] == sorted(m.at for m in msgs)
    assert all(m.at >= sim.start for m in msgs)
    for inc in sim.truth.incidents:
        assert inc.start <= (inc.end or inc.start)


def test_bikes_peak_in_the_morning_commute_at_residential_exits() -> None:
    sc = load_scenario("dry-weekday").with_overrides(duration="3h")  # 07:00–10:00 local
    sim = Simulation(sc, np.random.default_rng(sc.seed))
    residential = {
        p.device.device_id
        for p in sim.groups["bike"].places
        if p.device.attrs.get("side") == "residential"
    }
    by_hour: dict[int, list[float]] = defaultdict(list)
    for m in sim.messages():
        if m.body and m.device_id in residential and "/bike/" in m.topic:
            p = json.loads(m.body)
            if isinstance(p.get("bikes"), int):
                by_hour[(m.at - sim.start) // 3600].append(p["bikes"] / p["capacity"])
    first, last = np.mean(by_hour[0][:40]), np.mean(by_hour[2])
    assert last > first + 0.1


def test_camera_water_cover_follows_the_nearest_site(storm_run) -> None:
    sim, messages = storm_run
    cams = np.flatnonzero(sim.cam_water >= 0)
    assert cams.size > 5
    cam_site = {sim.groups["camera"].ids[i]: int(sim.cam_water[i]) for i in cams}
    water_index = {d: i for i, d in enumerate(sim.groups["water"].ids)}
    last_level: dict[int, float] = {}
    pairs = []
    for m in messages:
        if m.body is None:
            continue
        p = json.loads(m.body)
        if m.device_id in water_index and isinstance(p.get("level_cm"), float):
            last_level[water_index[m.device_id]] = p["level_cm"]
        elif m.device_id in cam_site and isinstance(p.get("water_cover"), float):
            site = cam_site[m.device_id]
            if site in last_level:
                pairs.append((last_level[site], p["water_cover"]))
    a = np.array(pairs)
    assert np.corrcoef(a[:, 0], a[:, 1])[0, 1] > 0.8
    assert a[a[:, 0] < 1, 1].max() <= 0.1  # dry street, no water seen
