"""While the ticket store is down the ticketing agent waits and retries the same alert;
any other store error is not retried (the agent dead-letters it)."""

from __future__ import annotations

import asyncio

import pytest

from streams.ticketing_job import until_stored
from tickets.errors import StoreError, StoreUnavailable


def test_an_unavailable_store_is_waited_for() -> None:
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailable("connection refused")
        return "raised"

    assert asyncio.run(until_stored(call, max_delay_s=0.01)) == "raised"
    assert len(calls) == 3


def test_other_store_errors_are_not_retried() -> None:
    async def call() -> str:
        raise StoreError("conflict not resolved")

    with pytest.raises(StoreError):
        asyncio.run(until_stored(call))
