"""Pure ticket rules: the legality table, raise decisions, SLA, escalation, linking."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickets import rules
from tickets.config import EscalationStage, SlaTarget, TicketsConfig

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)

LEGAL = {
    ("pre_alert", "open"),
    ("pre_alert", "retracted"),
    ("pre_alert", "false_alarm"),
    ("open", "acknowledged"),
    ("open", "dispatched"),
    ("open", "auto_resolved"),
    ("open", "false_alarm"),
    ("acknowledged", "dispatched"),
    ("acknowledged", "resolved"),
    ("acknowledged", "auto_resolved"),
    ("acknowledged", "false_alarm"),
    ("dispatched", "resolved"),
    ("dispatched", "false_alarm"),
}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(rules.STATES, rules.STATES)))
def test_legality_table(src: str, dst: str) -> None:
    assert rules.is_legal(src, dst) is ((src, dst) in LEGAL)


@pytest.mark.parametrize("state", sorted(rules.TERMINAL_STATES))
def test_terminal_states_have_no_exit(state: str) -> None:
    assert not any(rules.is_legal(state, s) for s in rules.STATES)


def test_auto_resolve_only_before_dispatch() -> None:
    assert rules.is_legal("acknowledged", "auto_resolved")
    assert not rules.is_legal("dispatched", "auto_resolved")


@pytest.mark.parametrize(
    ("state", "sev", "kind", "alert_sev", "action", "new_state", "escalate"),
    [
        (None, None, "forecast", "minor", "create", "pre_alert", False),
        (None, None, "observed", "major", "create", "open", False),
        (None, None, "maintenance", "minor", "create", "open", False),
        (None, None, "clear", "minor", "ignore", None, False),
        (None, None, "recede", "minor", "ignore", None, False),
        ("pre_alert", "minor", "forecast", "minor", "evidence", "pre_alert", False),
        ("pre_alert", "minor", "forecast", "major", "evidence", "pre_alert", True),
        ("pre_alert", "minor", "observed", "major", "promote", "open", True),
        ("pre_alert", "major", "observed", "minor", "promote", "open", False),
        ("pre_alert", "minor", "recede", "minor", "retract", "retracted", False),
        ("pre_alert", "minor", "clear", "minor", "retract", "retracted", False),
        ("open", "minor", "observed", "critical", "evidence", "open", True),
        ("open", "major", "observed", "minor", "evidence", "open", False),
        ("open", "minor", "clear", "minor", "auto_resolve", "auto_resolved", False),
        ("acknowledged", "minor", "clear", "minor", "auto_resolve", "auto_resolved", False),
        ("dispatched", "minor", "clear", "minor", "evidence", "dispatched", False),
        ("open", "minor", "recede", "minor", "evidence", "open", False),
        ("dispatched", "minor", "forecast", "minor", "evidence", "dispatched", False),
    ],
)
def test_decide_raise(
    state: str | None,
    sev: str | None,
    kind: str,
    alert_sev: str,
    action: str,
    new_state: str | None,
    escalate: bool,
) -> None:
    d = rules.decide_raise(state, sev, kind, alert_sev)
    assert (d.action, d.state, d.escalate) == (action, new_state, escalate)
    if state is not None and new_state != state:
        assert rules.is_legal(state, new_state)  # decisions never break the table


@pytest.mark.parametrize(
    ("category", "ack", "resolve"),
    [
        ("street_vendor", 15, 45),
        ("exposed_garbage", 15, 45),
        ("waterlogging", 15, 45),
        ("illegal_structure", 120, 7 * 24 * 60),
    ],
)
def test_default_sla(category: str, ack: int, resolve: int) -> None:
    sla = TicketsConfig().sla_for(category)
    ack_due, resolve_due = rules.due_times(sla, T0)
    assert ack_due - T0 == timedelta(minutes=ack)
    assert resolve_due - T0 == timedelta(minutes=resolve)


def test_sla_from_configuration_overrides_default() -> None:
    cfg = TicketsConfig(sla={"crowding": SlaTarget(ack_min=5, resolve_min=20)})
    assert cfg.sla_for("crowding").ack_min == 5


STAGES = (
    EscalationStage(after_ack_due_min=0, role="grid_head"),
    EscalationStage(after_ack_due_min=15, role="street_office"),
    EscalationStage(after_ack_due_min=45, role="district_command"),
)


@pytest.mark.parametrize(
    ("minutes_after_due", "stage"), [(-1, 0), (0, 1), (14, 1), (15, 2), (44, 2), (45, 3), (999, 3)]
)
def test_escalation_stage(minutes_after_due: int, stage: int) -> None:
    now = T0 + timedelta(minutes=minutes_after_due)
    assert rules.escalation_stage(T0, now, STAGES) == stage
    assert rules.escalation_stage(None, now, STAGES) == 0


@pytest.mark.parametrize(
    ("last", "now_min", "due"), [(None, 4, False), (None, 5, True), (10, 14, False), (10, 15, True)]
)
def test_reminder_due(last: int | None, now_min: int, due: bool) -> None:
    last_at = T0 + timedelta(minutes=last) if last is not None else None
    assert rules.reminder_due(T0, last_at, T0 + timedelta(minutes=now_min), 5) is due


@pytest.mark.parametrize(
    ("done", "now", "breach"), [(None, -1, False), (None, 1, True), (-1, 10, False), (1, 10, True)]
)
def test_breached(done: int | None, now: int, breach: bool) -> None:
    done_at = T0 + timedelta(minutes=done) if done is not None else None
    assert rules.breached(T0, done_at, T0 + timedelta(minutes=now)) is breach
    assert rules.breached(None, done_at, T0 + timedelta(minutes=now)) is False


def test_distance_known_value() -> None:
    # one minute of latitude is about 1852 m
    assert rules.distance_m(121.4, 31.2, 121.4, 31.2 + 1 / 60) == pytest.approx(1853, abs=3)


@pytest.mark.parametrize(
    ("ticket_point", "dt_min", "dlat", "match"),
    [
        ((121.4, 31.2), 10, 0.001, True),  # ~110 m, 10 min later
        ((121.4, 31.2), 10, 0.02, False),  # ~2.2 km away
        ((121.4, 31.2), 400, 0.001, False),  # outside the 6 h window
        ((121.4, 31.2), -30, 0.001, True),  # complaint logged before the ticket
        (None, 10, 0.5, True),  # ticket without a point: grid + category decide
    ],
)
def test_complaint_matches(
    ticket_point: tuple[float, float] | None, dt_min: int, dlat: float, match: bool
) -> None:
    got = rules.complaint_matches(
        ticket_point, T0, (121.4, 31.2 + dlat), T0 + timedelta(minutes=dt_min), 800.0, 360
    )
    assert got is match


@pytest.mark.parametrize(
    ("since", "lead"), [(None, None), (-30, 30.0), (0, None), (5, None), (-1.5, 1.5)]
)
def test_lead_minutes(since: float | None, lead: float | None) -> None:
    proactive = T0 + timedelta(minutes=since) if since is not None else None
    assert rules.lead_minutes(proactive, T0) == lead


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], None),
        (["duplicate"], None),
        (["real", "false_alarm"], 0.5),
        (["real", "already_fixed", "false_alarm", "duplicate"], 0.6667),
        (["false_alarm"], 0.0),
    ],
)
def test_precision(codes: list[str], expected: float | None) -> None:
    assert rules.precision(codes) == expected


def test_precision_by_groups() -> None:
    out = rules.precision_by([("r1", "real"), ("r1", "false_alarm"), ("r2", "real")])
    assert out["r1"]["precision"] == 0.5
    assert out["r1"]["n"] == 2
    assert out["r2"]["precision"] == 1.0


def test_queue_order_severity_then_due() -> None:
    rows = [
        ("minor", "open", T0, T0),
        ("critical", "dispatched", None, T0 + timedelta(hours=1)),
        ("critical", "open", T0 + timedelta(minutes=5), T0),
        ("critical", "pre_alert", None, None),
    ]
    ordered = sorted(rows, key=lambda r: rules.queue_sort_key(*r))
    assert [r[:2] for r in ordered] == [
        ("critical", "open"),
        ("critical", "dispatched"),
        ("minor", "open"),
        ("critical", "pre_alert"),
    ]


@given(
    st.sampled_from(rules.STATES),
    st.sampled_from(list(rules.SEVERITY_RANK)),
    st.sampled_from(["forecast", "observed", "clear", "recede", "maintenance"]),
    st.sampled_from(list(rules.SEVERITY_RANK)),
)
def test_decisions_only_take_legal_transitions(
    state: str, sev: str, kind: str, alert_sev: str
) -> None:
    if state in rules.TERMINAL_STATES:
        return  # a terminal ticket is never the incident's active ticket
    d = rules.decide_raise(state, sev, kind, alert_sev)
    assert d.state == state or rules.is_legal(state, d.state or "")
    higher = rules.SEVERITY_RANK[alert_sev] > rules.SEVERITY_RANK[sev]
    # only alerts that report the condition can raise severity; clear/recede never do
    assert d.escalate == (higher and kind in ("forecast", "observed", "maintenance"))


def test_token_roles_and_open311_keys() -> None:
    cfg = TicketsConfig.model_validate(
        {
            "tokens": [{"name": "a", "role": "operator", "token": "secret-op"}],
            "open311_api_keys": ["k1"],
        }
    )
    assert cfg.role_of("secret-op") == "operator"
    assert cfg.role_of("secret-o") is None
    assert cfg.open311_key_ok("k1")
    assert not cfg.open311_key_ok("k2")


def test_default_roster_names_someone_for_every_category() -> None:
    cfg = TicketsConfig()
    r = cfg.roster_for("D01-S01-G01")
    assert r.grid_head
    assert r.inspectors
    for cat in ("waterlogging", "street_vendor", "device_fault"):
        assert cfg.agency_for("D01-S01-G01", cat)


def _message(**over: object) -> object:
    import json

    from gridwatch.contracts import TicketEvent
    from tickets.outbox import OutboxMessage

    doc = {
        "event_id": "e1",
        "ticket_id": "TK-1",
        "incident_key": "D01-S01-G01:waterlogging:a b",
        "event": "create",
        "state": "open",
        "category": "waterlogging",
        "severity": "major",
        "grid_id": "D01-S01-G01",
        "ts": "2026-07-01T08:00:00.123Z",
        "actor": 'op "li"',
        **over,
    }
    ev = TicketEvent.model_validate_json(json.dumps(doc))
    return OutboxMessage(seq=7, event_id="e1", key=ev.incident_key, event=ev)


def test_kafka_record_keys_by_incident_with_event_id_header() -> None:
    from gridwatch.contracts import TicketEvent
    from tickets.outbox import kafka_record

    m = _message()
    key, value, headers = kafka_record(m)  # type: ignore[arg-type]
    assert key == b"D01-S01-G01:waterlogging:a b"
    assert TicketEvent.model_validate_json(value).ticket_id == "TK-1"
    assert ("event_id", b"e1") in headers


def test_influx_line_protocol() -> None:
    from tickets.outbox import influx_line

    line = influx_line(_message())  # type: ignore[arg-type]
    assert line == (
        "ticket,grid=D01-S01-G01,category=waterlogging,severity=major,state=open,event=create "
        'ticket_id="TK-1",incident="D01-S01-G01:waterlogging:a b",actor="op \\"li\\"",'
        'reason="",value=1i,seq=7i 1782892800123000007'
    )


def test_influx_line_of_a_complaint_carries_pre_emption() -> None:
    from dataclasses import replace

    from tickets.outbox import influx_line

    m = _message(event="complaint")
    pre = replace(m, detail={"pre_empted": True, "lead_min": 42})  # type: ignore[type-var]
    assert influx_line(pre).endswith(",seq=7i,pre_empted=1i,lead_min=42.0 1782892800123000007")
    late = replace(m, detail={"pre_empted": False, "lead_min": None})  # type: ignore[type-var]
    assert influx_line(late).endswith(",seq=7i,pre_empted=0i 1782892800123000007")
