"""Ticket-side fault drills: the API and the outbox relay killed with kill -9, the
tickets' PostgreSQL crashed under the stream worker (see ``gridwatch.drills.tickets``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gridwatch.drills import DrillResult

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Run = Callable[[str], DrillResult]


def test_ticket_api_killed_under_load_loses_and_doubles_nothing(run_drill: Run) -> None:
    r = run_drill("tickets-api-kill")
    assert r.passed, r.failures
    assert r.figures["client_retries"] > 0  # the kill did land during the load


def test_relay_killed_mid_publication_publishes_every_row_once(run_drill: Run) -> None:
    r = run_drill("relay-kill")
    assert r.passed, r.failures
    assert 0 < r.figures["published_at_kill"] < r.figures["outbox_rows"]


def test_tickets_postgresql_crash_loses_no_alert(run_drill: Run) -> None:
    r = run_drill("postgres-restart")
    assert r.passed, r.failures
