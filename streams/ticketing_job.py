"""Ticketing job: alerts → the ticket store (idempotent by alert id); complaints from
``gw.complaints`` (the 12345 hotline feed) → linked to the matching ticket. A district's
storm mode alerts (``storm_on`` / ``storm_off`` from the rain job) take the same path and
become storm periods in the store, never tickets.

``gw.alerts`` is keyed by incident key, so one incident is handled by one partition and
one worker; the store's unique partial index makes a race between workers (during a
rebalance) still end in one ticket, and a replayed alert id changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import faust

from gridwatch.contracts import Alert, Complaint, DeadLetterReason, parse_record
from gridwatch.errors import ContractError, GridWatchError
from gridwatch.retry import Backoff
from streams.sink import dead_letter
from tickets.errors import StoreUnavailable

T = TypeVar("T")

log = logging.getLogger(__name__)


async def until_stored(call: Callable[[], Awaitable[T]], max_delay_s: float = 10.0) -> T:
    """Run ``call`` until the ticket store takes it: while the database is down the
    partition waits (Kafka keeps what follows) instead of dead-lettering the alert."""
    backoff = Backoff(min(0.5, max_delay_s), max_delay_s)
    while True:
        try:
            return await call()
        except StoreUnavailable as exc:
            wait = backoff.next()
            log.warning("ticket store unavailable, holding error=%s delay_s=%.1f", exc, wait)
            await asyncio.sleep(wait)


def register(app: faust.App, ctx: Any) -> None:
    topic = ctx.alerts

    async def raise_alert(alert: Alert) -> Any:
        # the store is opened (and migrated) on first use: that too waits for the database
        return await ctx.ticket_service().araise_alert(alert)

    async def file_complaint(complaint: Complaint) -> Any:
        return await asyncio.to_thread(ctx.ticket_service().file_complaint, complaint)

    async def ticketing(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            try:
                alert = parse_record(Alert, raw)
                outcome = await until_stored(partial(raise_alert, alert))
                ctx.stats.tickets[outcome.action] = ctx.stats.tickets.get(outcome.action, 0) + 1
            except ContractError as exc:
                await dead_letter(
                    ctx, raw, topic.get_topic_name(), DeadLetterReason(exc.reason), exc.detail
                )
            except GridWatchError as exc:
                log.exception("alert could not be applied")
                await dead_letter(
                    ctx, raw, topic.get_topic_name(), DeadLetterReason.PROCESSING, repr(exc)
                )

    complaints_topic = app.topic(
        ctx.settings.kafka.topic("complaints"),
        value_serializer="raw",
        key_serializer="raw",
        partitions=ctx.settings.kafka.partitions,
    )

    async def complaints(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            try:
                complaint = parse_record(Complaint, raw)
                outcome = await until_stored(partial(file_complaint, complaint))
                key = "complaint_pre_empted" if outcome.pre_empted else "complaint_reactive"
                ctx.stats.tickets[key] = ctx.stats.tickets.get(key, 0) + 1
            except ContractError as exc:
                await dead_letter(
                    ctx,
                    raw,
                    complaints_topic.get_topic_name(),
                    DeadLetterReason(exc.reason),
                    exc.detail,
                )
            except GridWatchError as exc:
                log.exception("complaint could not be filed")
                await dead_letter(
                    ctx,
                    raw,
                    complaints_topic.get_topic_name(),
                    DeadLetterReason.PROCESSING,
                    repr(exc),
                )

    app.agent(topic, name="ticketing", concurrency=1)(ticketing)
    app.agent(complaints_topic, name="complaints", concurrency=1)(complaints)
