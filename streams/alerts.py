"""Building alerts shared by several jobs: ``device_fault`` alerts for every job that finds
a sick device, and the storm mode alerts of a district (hysteresis and builder).

Storm mode (``storm_step``, a pure step function over event time): a district turns
*on* once the share of its grids in heavy rain has stayed ≥ ``storm_share`` for
``storm_on_s``, and *off* once it has stayed below the lower ``storm_off_share`` for
``storm_off_s``; between the two shares nothing changes (the hysteresis). Each change
is one ``storm_on`` / ``storm_off`` alert on incident ``storm:{district}`` whose id is
made of the district and the storm's start (and end), so every worker that sees the
same storm sends the same alert and the ticket store keeps it once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gridwatch.contracts import Alert, AlertKind, Category, Severity, incident_key, storm_key
from gridwatch.registry import Placement

if TYPE_CHECKING:  # annotations only: rain_scoring imports the scorers that import us
    from streams.rain_scoring import RainParams

STORM_RULE = "storm-mode-1"


def device_fault_alert(
    placement: Placement,
    *,
    ts: datetime,
    kind: AlertKind,
    tag: str,
    why: str,
    evidence: dict[str, Any],
    rule_version: str,
    severity: Severity = Severity.MINOR,
    id_ms: int | None = None,
) -> Alert:
    """A maintenance (or clear) alert on the device's own incident ``grid/device_fault/
    device``; the alert id is ``<incident>:<tag>:<ms>`` (``id_ms`` or ``ts``), so the
    same finding sent twice is one alert."""
    device = placement.device.device_id
    key = incident_key(placement.grid_id, Category.DEVICE_FAULT, device)
    ms = id_ms if id_ms is not None else int(ts.timestamp() * 1000)
    return Alert(
        alert_id=f"{key}:{tag}:{ms}",
        incident_key=key,
        kind=kind,
        category=Category.DEVICE_FAULT,
        severity=severity,
        grid_id=placement.grid_id,
        district_id=placement.district_id,
        site=device,
        ts=ts,
        lon=placement.device.lon,
        lat=placement.device.lat,
        why=why[:500],
        evidence={"device_ids": [device], **evidence},
        rule_version=rule_version,
    )


# -- storm mode --------------------------------------------------------------------------


@dataclass(frozen=True)
class StormState:
    """One district's storm mode between pictures.

    ``since_ms``: picture time from which the share has been past the level that would
    flip the mode (None: it is not); ``started_ms``: the storm's start while on (or while
    the share is high and the mode not yet on); ``peak_share``: the highest share since.
    """

    on: bool = False
    since_ms: int | None = None
    started_ms: int | None = None
    peak_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StormState:
        return cls(
            on=bool(d["on"]),
            since_ms=None if d.get("since_ms") is None else int(d["since_ms"]),
            started_ms=None if d.get("started_ms") is None else int(d["started_ms"]),
            peak_share=float(d.get("peak_share", 0.0)),
        )


@dataclass(frozen=True)
class StormChange:
    """Storm mode turned on or off, confirmed at ``at_ms`` (event time)."""

    district_id: str
    on: bool
    at_ms: int
    started_ms: int  # the first picture of the run of high shares that turned it on
    ended_ms: int | None  # off: the first picture of the run of low shares that turned it off
    share: float
    peak_share: float


def storm_step(
    state: StormState, district_id: str, share: float, time_ms: int, params: RainParams
) -> tuple[StormState, StormChange | None]:
    """Fold one storm picture (the district's share of grids in heavy rain at picture
    time ``time_ms``) into its storm mode; return the new state and the change, if any.

    A picture no newer than the run's start (a repeated or older picture) only updates
    the peak. Pure: event times in, no clock."""
    if not state.on:
        if share < params.storm_share:
            return StormState(), None
        since = state.since_ms if state.since_ms is not None else time_ms
        peak = max(state.peak_share, share)
        if time_ms - since >= params.storm_on_s * 1000:
            change = StormChange(district_id, True, time_ms, since, None, share, peak)
            return StormState(on=True, started_ms=since, peak_share=peak), change
        return StormState(since_ms=since, started_ms=since, peak_share=peak), None
    peak = max(state.peak_share, share)
    started = state.started_ms if state.started_ms is not None else time_ms
    if share >= params.storm_off_share:
        return StormState(on=True, started_ms=started, peak_share=peak), None
    since = state.since_ms if state.since_ms is not None else time_ms
    if time_ms - since >= params.storm_off_s * 1000:
        return StormState(), StormChange(district_id, False, time_ms, started, since, share, peak)
    return StormState(on=True, since_ms=since, started_ms=started, peak_share=peak), None


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def storm_alert(change: StormChange, params: RainParams) -> Alert:
    """The ``storm_on`` / ``storm_off`` alert of a change: incident ``storm:{district}``,
    id ``storm:{district}:on:{start ms}`` or ``…:off:{start ms}:{end ms}``."""
    key = storm_key(change.district_id)
    started = _utc(change.started_ms)
    heavy = f"heavy rain (≥ {params.heavy_mm_h:g} mm/h)"
    if change.on:
        alert_id = f"{key}:on:{change.started_ms}"
        why = (
            f"storm mode on: {change.share:.0%} of the district's grids in {heavy}, "
            f"≥ {params.storm_share:.0%} since {started:%H:%M} UTC"
        )
    else:
        assert change.ended_ms is not None
        alert_id = f"{key}:off:{change.started_ms}:{change.ended_ms}"
        why = (
            f"storm mode off: {change.share:.0%} of the district's grids in {heavy}, "
            f"< {params.storm_off_share:.0%} since {_utc(change.ended_ms):%H:%M} UTC "
            f"(peak {change.peak_share:.0%})"
        )
    return Alert(
        alert_id=alert_id,
        incident_key=key,
        kind="storm_on" if change.on else "storm_off",
        category=Category.WATERLOGGING,
        severity=Severity.MAJOR if change.on else Severity.INFO,
        grid_id=change.district_id,
        district_id=change.district_id,
        ts=_utc(change.at_ms),
        why=why[:500],
        evidence={
            "share": round(change.share, 4),
            "peak_share": round(change.peak_share, 4),
            "started_at": started.isoformat(),
            "ended_at": None if change.ended_ms is None else _utc(change.ended_ms).isoformat(),
            "storm_share": params.storm_share,
            "storm_off_share": params.storm_off_share,
            "heavy_mm_h": params.heavy_mm_h,
        },
        rule_version=STORM_RULE,
    )
