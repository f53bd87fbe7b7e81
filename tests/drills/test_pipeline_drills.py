"""Pipeline fault drills on the real stack: a component killed, restarted, slowed or
skewed mid-storm, and the counts that must still hold (see ``gridwatch.drills``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gridwatch.drills import DrillResult

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Run = Callable[[str], DrillResult]


def test_bridge_killed_mid_stream_loses_and_doubles_nothing(run_drill: Run) -> None:
    r = run_drill("bridge-kill")
    assert r.passed, r.failures
    assert r.figures["water_missing"] == 0 and r.figures["water_published"] > 1000


def test_worker_killed_mid_storm_loses_and_doubles_nothing(run_drill: Run) -> None:
    r = run_drill("worker-kill")
    assert r.passed, r.failures
    assert r.figures["waterlogging_tickets"] > 0


def test_a_worker_joining_and_one_leaving_lose_and_double_nothing(run_drill: Run) -> None:
    r = run_drill("worker-join")
    assert r.passed, r.failures
    assert r.figures["water_missing"] == 0 and r.figures["water_extra"] == 0
    assert r.figures["waterlogging_tickets"] > 0


def test_influxdb_down_then_up_loses_nothing(run_drill: Run) -> None:
    r = run_drill("influx-outage")
    assert r.passed, r.failures
    assert r.figures["influx_down_s"] >= 30


def test_mosquitto_restart_keeps_queued_qos1_messages(run_drill: Run) -> None:
    r = run_drill("mosquitto-restart")
    assert r.passed, r.failures
    assert r.figures["queued_in_session"] >= 1500


def test_kafka_restart_loses_nothing_published_after_it(run_drill: Run) -> None:
    r = run_drill("kafka-restart")
    assert r.passed, r.failures
    assert r.figures["committed_partitions_at_kill"] > 0
    assert r.figures["water_missing"] == 0 and r.figures["water_published"] > 1000


def test_kafka_leader_and_controller_killed_lose_and_double_nothing(run_drill: Run) -> None:
    r = run_drill("kafka-leader-kill")
    assert r.passed, r.failures
    assert r.figures["water_missing"] == 0 and r.figures["water_extra"] == 0
    assert r.figures["leader_resume_s"] <= 30 and r.figures["controller_resume_s"] <= 30


def test_slow_network_to_influxdb_loses_nothing(run_drill: Run) -> None:
    r = run_drill("slow-influx")
    assert r.passed, r.failures
    assert r.figures["proxy_mean_delay_ms"] >= 200


def test_skewed_clocks_are_stored_or_dead_lettered_never_lost(run_drill: Run) -> None:
    r = run_drill("clock-skew")
    assert r.passed, r.failures
    assert r.figures["skewed_devices"] > 0
