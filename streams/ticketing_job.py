"""Ticketing job: alerts → the ticket store (idempotent by alert id); complaints from
``gw.complaints`` (the 12345 hotline feed) → linked to the matching ticket.

``gw.alerts`` is keyed by incident key, so one incident is handled by one partition and
one worker; the store's unique partial index makes a race between workers (during a
rebalance) still end in one ticket, and a replayed alert id changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from gridwatch.contracts import Alert, Complaint, DeadLetterReason, parse_record
from gridwatch.errors import ContractError, GridWatchError
from streams.sink import dead_letter

log = logging.getLogger(__name__)


def register(app: faust.App, ctx: Any) -> None:
    topic = ctx.alerts

    async def ticketing(stream: faust.StreamT[bytes]) -> None:
        service = None
        async for raw in stream:
            try:
                alert = parse_record(Alert, raw)
                if service is None:
                    service = ctx.ticket_service()
                outcome = await service.araise_alert(alert)
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
                outcome = await asyncio.to_thread(ctx.ticket_service().file_complaint, complaint)
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
