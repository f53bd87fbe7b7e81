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
    assert all(sub["suback"] == ["Not authorized"] for sub in acl["subscribes"].values())
    assert acl["subscribes_refused"] == acl["subscribes_tried"] == len(acl["subscribes"]) + 1
    assert acl["refused_messages_in_kafka"] == 0


def test_a_device_may_not_publish_its_id_under_another_kind(result: dict[str, Any]) -> None:
    classes = result["figures"]["classes"]
    mismatch = [
        c
        for c in classes
        if c.startswith(("acl:own-id-", "fault:topic_mismatch:", "decode:kind-mismatch"))
    ]
    assert len(mismatch) >= 8
    for name in mismatch:
        doc = classes[name]
        assert doc["route"] == "broker_acl", name
        assert doc["refused"] == doc["sent"] > 0, name
        assert doc["broker_answers"] == {"Not authorized": doc["sent"]}, name
        assert doc["dead_letters"] == {}, name


def test_every_endpoint_is_called_by_every_caller(result: dict[str, Any]) -> None:
    api = result["figures"]["api"]
    assert api["error"] is None
    assert api["unmapped_routes"] == []
    assert api["server_errors"] == 0
    assert api["violations"] == []
    assert {tuple(r.split(" ", 1)) for r in api["calls"]} == set(REQUIRED)
    for route, by_caller in api["calls"].items():
        assert set(by_caller) == set(CALLERS), route


def test_a_device_cannot_join_the_bridges_share_group(result: dict[str, Any]) -> None:
    hijack = result["figures"]["acl"]["share_group_hijack"]
    assert hijack["filter"].startswith("$share/")
    assert hijack["suback"] == ["Not authorized"]
    assert hijack["refused"] is True
    assert hijack["messages_received"] == 0
    assert hijack["sent"] > 0
    assert hijack["arrived"] == hijack["sent"]
    assert hijack["lost"] == 0


def test_the_drill_passes(result: dict[str, Any]) -> None:
    assert result["figures"]["failures"] == []
    assert result["passed"]
