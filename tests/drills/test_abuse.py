"""The attack sweep against a real stack: bad input, ACL violations, API abuse."""

from __future__ import annotations

from typing import Any

import pytest

from gridwatch.abuse import run_abuse
from gridwatch.abuse_api import CALLERS, REQUIRED
from gridwatch.stack import Stack
from ingest.badinput import bad_inputs
from simulators.scenario import MALFORMED_CLASSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def result(stack: Stack) -> dict[str, Any]:
    # run_abuse isolates itself: its own topic prefix, share group and ticket store
    return run_abuse(stack.settings, seconds=15, rate=600, progress=False)


def test_the_sweep_tries_every_class_and_nothing_crashes(result: dict[str, Any]) -> None:
    f = result["figures"]
    assert f["crashes"] == {
        "total": 0,
        "http_5xx": 0,
        "process_deaths": [],
        "tracebacks": {"bridge": 0, "tickets-api": 0},
        "decoder_internal_errors": 0,
    }
    kinds = ("water", "rain", "bike", "camera", "status")
    catalogue = bad_inputs(0, dict.fromkeys(kinds, "x"), other_water="y", unknown_water="z")
    tried = set(f["classes"])
    assert {f"decode:{b.name}" for b in catalogue} <= tried
    assert {f"fault:{c}:{k}" for c in MALFORMED_CLASSES for k in kinds} <= tried
    assert {"duplicate", "rate_limited"} <= tried
    # every class got its own reason (or was refused by the broker)
    assert f["classes_failed"] == []
    reasons = set(f["dead_letters_by_reason"])
    assert reasons >= {c["expect"] for c in f["classes"].values() if c["route"] == "bridge"} - {
        "reading"
    }
    assert f["dead_letters_unmatched"] == {}
    assert f["rate_achieved_msg_s"] > 100


def test_no_valid_reading_is_lost_and_no_attack_reaches_kafka(result: dict[str, Any]) -> None:
    f = result["figures"]
    assert f["valid_readings"]["sent"] > 0
    assert f["valid_readings"]["arrived"] == f["valid_readings"]["sent"]
    assert f["lost_readings"] == []
    assert f["leaked_readings"] == []
    assert f["attack_readings_in_kafka"] == 0


def test_every_acl_violation_is_refused(result: dict[str, Any]) -> None:
    acl = result["figures"]["acl"]
    assert acl["violations_tried"] > 0
    assert acl["violations_refused"] == acl["violations_tried"]
    assert acl["connects"] and all(
        set(answers) == {"Not authorized"} for answers in acl["connects"].values()
    )
    assert acl["subscribes"] and acl["messages_delivered_to_spies"] == 0
    assert acl["refused_messages_in_kafka"] == 0


def test_every_endpoint_is_called_by_every_caller(result: dict[str, Any]) -> None:
    api = result["figures"]["api"]
    assert api["error"] is None
    assert api["unmapped_routes"] == []
    assert api["server_errors"] == 0
    assert api["violations"] == []
    assert {tuple(r.split(" ", 1)) for r in api["calls"]} == set(REQUIRED)
    for route, by_caller in api["calls"].items():
        assert set(by_caller) == set(CALLERS), route


@pytest.mark.xfail(
    strict=True,
    reason="Mosquitto grants a device's subscription to the bridge's $share group and "
    "then drops the messages it assigns to it (no read access): half the traffic is lost",
)
def test_a_device_in_the_bridges_share_group_steals_nothing(result: dict[str, Any]) -> None:
    hijack = result["figures"]["acl"]["share_group_hijack"]
    assert hijack["sent"] > 0
    assert hijack["lost"] == 0
    assert result["passed"]
