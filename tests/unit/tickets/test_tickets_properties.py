"""Property tests for the pure mappings: wire formats and distances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gridwatch.contracts import Category, Severity, TicketEvent
from tickets import rules
from tickets.outbox import OutboxMessage, influx_line, kafka_record

text = st.text(max_size=120)
events = st.builds(
    TicketEvent,
    event_id=st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
    ticket_id=st.from_regex(r"TK-[0-9A-F]{12}", fullmatch=True),
    incident_key=st.text(max_size=200),
    event=st.sampled_from(["create", "complaint", "escalate", "resolve", "evidence"]),
    state=st.sampled_from(rules.STATES),
    category=st.sampled_from(list(Category)),
    severity=st.sampled_from(list(Severity)),
    grid_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    ts=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    actor=st.text(max_size=64),
    reason=text,
)
details = st.fixed_dictionaries(
    {"pre_empted": st.booleans(), "lead_min": st.none() | st.floats(0, 1e4)}
)


@given(events, details, st.integers(1, 2**40))
def test_influx_line_is_one_well_formed_line(ev: TicketEvent, detail: dict, seq: int) -> None:
    line = influx_line(
        OutboxMessage(seq=seq, event_id=ev.event_id, key="k", event=ev, detail=detail)
    )
    assert "\n" not in line
    assert "\r" not in line
    assert line.startswith(f"ticket,grid={ev.grid_id},")
    epoch_ms = (ev.ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    # ns time: the event's millisecond, plus its seq so events never share a point
    assert line.endswith(f" {epoch_ms * 1_000_000 + seq % 1_000_000}")
    assert f"seq={seq}i" in line


@given(events)
def test_kafka_record_round_trips(ev: TicketEvent) -> None:
    key, value, headers = kafka_record(
        OutboxMessage(seq=1, event_id=ev.event_id, key="k", event=ev)
    )
    assert key == b"k"
    assert TicketEvent.model_validate_json(value) == ev
    assert dict(headers)["event_id"] == ev.event_id.encode()


points = st.tuples(st.floats(-180, 180), st.floats(-89, 89))


@given(points, points)
def test_distance_is_symmetric_and_bounded(a: tuple[float, float], b: tuple[float, float]) -> None:
    d = rules.distance_m(*a, *b)
    assert d >= 0
    assert abs(d - rules.distance_m(*b, *a)) < 1e-6
    assert d <= 3.1416 * rules.EARTH_RADIUS_M + 1
