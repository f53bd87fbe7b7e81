"""The attack sweep's plan (pure): routes, rounds, rate budget, API cases and verdicts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gridwatch.abuse_api import (
    CALLERS,
    REQUIRED,
    Call,
    allowed_statuses,
    plan_calls,
    route_cases,
)
from gridwatch.abuse_plan import (
    ACL,
    ATTACK_SEQ0,
    BRIDGE,
    CLIENT,
    DISCONNECT,
    READING,
    REFUSED,
    SeqCounter,
    flood_sends,
    make_pools,
    mqtt_route,
    round_sends,
    rounds_per_s_max,
    token_load,
)
from gridwatch.contracts import KINDS
from ingest.badinput import bad_inputs
from simulators.city import generate_city
from simulators.scenario import MALFORMED_CLASSES

ROOT = "gw/v1"


@pytest.fixture(scope="module")
def pools():  # type: ignore[no-untyped-def]
    devices: dict[str, list[str]] = {}
    for d in generate_city(11, "small").devices:
        devices.setdefault(d["kind"], []).append(d["device_id"])
    return make_pools(devices, "abuse-ghost")


@pytest.mark.parametrize(
    ("topic", "publisher", "route"),
    [
        ("gw/v1/water/wl-1", "wl-1", BRIDGE),
        ("gw/v1/rain/wl-1", "wl-1", ACL),  # its own id, but not its kind
        ("gw/v1/smoke/wl-1", "wl-1", ACL),
        ("gw/v1/water/wl-2", "wl-1", ACL),
        ("gw/v1/water/wl-1/x", "wl-1", ACL),
        ("gw/v2/water/wl-1", "wl-1", ACL),
        ("gw/v1", "wl-1", ACL),
        ("$SYS/broker/wl-1", "wl-1", ACL),
        ("gw/v1/water/+", "wl-1", CLIENT),
        ("gw/v1/water/#", "wl-1", CLIENT),
        ("gw/v1/water/wl-1\n", "wl-1", DISCONNECT),
    ],
)
def test_mqtt_route(topic: str, publisher: str, route: str) -> None:
    assert mqtt_route(topic, publisher, ROOT, "water") == route


def test_a_round_holds_every_class_once(pools) -> None:  # type: ignore[no-untyped-def]
    sends = round_sends(0, 1.8e9, pools, ROOT, np.random.default_rng(1), SeqCounter())
    classes = Counter(s.cls for s in sends)
    names = {
        b.name for b in bad_inputs(0, dict.fromkeys(KINDS, "x"), other_water="y", unknown_water="z")
    }
    assert {f"decode:{n}" for n in names} <= set(classes)
    assert {f"fault:{c}:water" for c in MALFORMED_CLASSES} <= set(classes)
    assert {"duplicate", "duplicate:first", "acl:other-device"} <= set(classes)
    assert {"acl:own-id-other-kind", "acl:own-id-unknown-kind"} <= set(classes)
    assert {f"valid:{k}" for k in KINDS} <= set(classes)
    assert set(classes.values()) == {1}
    kinds = pools.kinds()
    for s in sends:
        # what the broker stops is expected to be refused, everything else gets a verdict
        assert (s.expect == REFUSED) == (s.route != BRIDGE), s
        # a device reaches the bridge only under its own kind and id
        if s.route == BRIDGE:
            assert s.topic == f"{ROOT}/{kinds[s.publisher]}/{s.publisher}", s
        if s.route in (ACL, CLIENT):
            assert s.publisher == pools.attacker, s
        if s.expect == READING:
            assert s.publisher in {d for ds in pools.honest.values() for d in ds} | set(pools.dup)
    # a device publishing its own id under another kind is the broker's to refuse
    mismatch = [s for s in sends if s.cls.startswith(("fault:topic_mismatch", "decode:kind-"))]
    assert mismatch and all(s.route == ACL for s in mismatch)
    # the simulators' classes rotate over the kinds, one kind per round
    later = round_sends(3, 1.8e9, pools, ROOT, np.random.default_rng(1), SeqCounter())
    assert {f"fault:{c}:{KINDS[3]}" for c in MALFORMED_CLASSES} <= {s.cls for s in later}


def test_same_seed_same_rounds(pools) -> None:  # type: ignore[no-untyped-def]
    def make() -> list[tuple[str, str, bytes]]:
        rng, seq = np.random.default_rng(5), SeqCounter()
        return [
            (s.cls, s.topic, s.payload)
            for r in range(3)
            for s in round_sends(r, 1.8e9, pools, ROOT, rng, seq)
        ]

    assert make() == make()


def test_attack_payloads_carry_the_attack_seq(pools) -> None:  # type: ignore[no-untyped-def]
    sends = round_sends(2, 1.8e9, pools, ROOT, np.random.default_rng(1), SeqCounter())
    for s in sends:
        if s.cls.startswith("acl:"):
            assert f'"seq":{ATTACK_SEQ0 + 2}'.encode() in s.payload


def test_rounds_keep_each_device_under_half_its_rate(pools) -> None:  # type: ignore[no-untyped-def]
    rate = 20.0
    rho = rounds_per_s_max(pools, ROOT, rate)
    assert rho > 1
    rng, seq = np.random.default_rng(0), SeqCounter()
    load: Counter[str] = Counter()
    rounds = 120
    for r in range(rounds):
        load.update(token_load(round_sends(r, 1.8e9, pools, ROOT, rng, seq)))
    per_device_per_s = max(load.values()) * rho / rounds
    assert per_device_per_s <= 0.5 * rate * 1.1


def test_flood_is_one_device_with_fresh_seqs(pools) -> None:  # type: ignore[no-untyped-def]
    sends = flood_sends(pools, ROOT, 50, 1.8e9, SeqCounter())
    assert {s.publisher for s in sends} == {pools.flood}
    assert len({s.payload for s in sends}) == 50


def test_pools_need_devices_of_every_kind() -> None:
    with pytest.raises(ValueError, match="status"):
        make_pools({k: [f"{k}-{i}" for i in range(20)] for k in KINDS if k != "status"}, "g")


# -- the API sweep ---------------------------------------------------------------------


def test_every_route_is_called_by_every_caller_with_valid_input() -> None:
    routes = [(m, p, m == "POST", frozenset({"limit", "q"})) for m, p in REQUIRED]
    calls = plan_calls(routes)
    for method, path in REQUIRED:
        callers = {c.caller for c in calls if (c.method, c.path, c.case) == (method, path, "valid")}
        assert callers == set(CALLERS)


def test_route_cases() -> None:
    assert route_cases("GET", "/healthz", False, frozenset()) == ["valid"]
    body = route_cases("POST", "/api/v1/tickets/{ticket_id}/assign", True, frozenset())
    assert {"invalid-json", "too-large-body", "unicode", "unknown-id", "traversal-id"} <= set(body)
    query = route_cases("GET", "/api/v1/tickets", False, frozenset({"limit", "q"}))
    assert {"negative-numbers", "huge-string", "injection"} <= set(query)
    # a query case is tried only where the route takes one of its fields
    assert route_cases("GET", "/api/v1/kpis", False, frozenset({"since"})) == [
        "valid",
        "wrong-types",
    ]


@pytest.mark.parametrize(
    ("call", "ok", "bad"),
    [
        (Call("GET", "/api/v1/tickets", "none", "valid"), {401}, {200, 403, 500}),
        (Call("GET", "/api/v1/tickets", "expired", "valid"), {401}, {200}),
        (Call("POST", "/api/v1/alerts", "operator", "valid"), {403}, {200, 401}),
        (Call("POST", "/api/v1/alerts", "admin", "valid"), {200}, {500, 403}),
        (Call("POST", "/api/v1/alerts", "admin", "wrong-types"), {422}, {200, 500}),
        (Call("POST", "/api/v1/alerts", "operator", "invalid-json"), {403, 422}, {200}),
        (Call("POST", "/api/v1/alerts", "none", "wrong-types"), {401}, {422, 200}),
        (Call("GET", "/api/v1/tickets/{ticket_id}", "viewer", "unknown-id"), {404}, {200}),
        (Call("GET", "/api/v1/tickets/{ticket_id}", "viewer", "bad-id"), {422}, {200, 500}),
        (Call("GET", "/healthz", "none", "valid"), {200}, {401, 500}),
        (Call("POST", "/open311/v2/requests.json", "none", "valid"), {400, 403}, {201}),
        (Call("POST", "/open311/v2/requests.json", "admin", "valid"), {201}, {500}),
        (Call("POST", "/open311/v2/requests.json", "admin", "huge-string"), {400}, {201}),
        (Call("GET", "/api/v1/tickets", "viewer", "injection"), {200, 422}, {500}),
    ],
)
def test_allowed_statuses(call: Call, ok: set[int], bad: set[int]) -> None:
    allowed = allowed_statuses(call)
    assert ok <= allowed
    assert not (bad & allowed)
    assert not any(s >= 500 for s in allowed)
