"""The exception hierarchy: one root, one subclass family per package.

``GridWatchError``
    ``ConfigError``        settings, scenario or registry files that cannot be used
    ``ContractError``      a payload that is not a valid record (carries a reason code)
    ``RegistryError``      an unknown device or grid, a malformed GeoJSON
    ``StackError``         a local service that cannot be installed, started or reached
    ``SinkError``          a time-series write that failed after its retries

Packages add their own subclasses (``ingest.errors``, ``tickets.errors``...) under these
or directly under ``GridWatchError``. Third-party errors are converted with
``raise ... from exc`` so the original stays in the traceback.
"""

from __future__ import annotations


class GridWatchError(Exception):
    """Root of every error GridWatch raises on purpose."""


class ConfigError(GridWatchError):
    """Configuration that cannot be used (settings, scenario, registry)."""


class ContractError(GridWatchError):
    """A payload that does not satisfy a message contract.

    ``reason`` is one of the dead-letter reason codes of ``gridwatch.contracts``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RegistryError(GridWatchError):
    """An unknown device or grid, or a registry file that cannot be loaded."""


class StackError(GridWatchError):
    """A local service that cannot be installed, started or reached."""


class SinkError(GridWatchError):
    """A write to the time-series store that failed after its retries."""


class WaitTimeout(GridWatchError, TimeoutError):
    """Something the run waits for (a lag to drain, a service to answer) did not happen in
    time: one line on the command line, still a ``TimeoutError`` to code that retries."""
