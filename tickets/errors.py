"""Errors raised by the ticket store, service and API.

``TicketError`` (under ``GridWatchError``)
    ``TicketNotFound``       no ticket (or complaint) with that id
    ``IllegalTransition``    the lifecycle table forbids the requested state change
    ``UnknownLocation``      a complaint or alert whose point lies in no grid
    ``StoreError``           the database could not be reached or migrated
    ``OutboxError``          the relay's publisher failed; rows stay unpublished
"""

from __future__ import annotations

from gridwatch.errors import GridWatchError


class TicketError(GridWatchError):
    """Root of the tickets package's errors."""


class TicketNotFound(TicketError):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id!r} not found")
        self.ticket_id = ticket_id


class IllegalTransition(TicketError):
    def __init__(self, ticket_id: str, from_state: str, to_state: str) -> None:
        super().__init__(f"ticket {ticket_id!r}: {from_state} → {to_state} is not allowed")
        self.ticket_id = ticket_id
        self.from_state = from_state
        self.to_state = to_state


class UnknownLocation(TicketError):
    """A point that lies in no grid of the registry."""


class StoreError(TicketError):
    """The ticket database cannot be reached, migrated or written."""


class StoreUnavailable(StoreError):
    """The database kept failing at the connection or transaction level (down,
    restarting, deadlocked): the same call may succeed later, so callers retry it
    rather than give the work up."""


class OutboxError(TicketError):
    """Publishing outbox rows failed; they stay unpublished and are retried."""
