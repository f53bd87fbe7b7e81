"""Scenario files: a strict pydantic model of a simulation run, loaded from YAML.

A scenario names the city (size, seed), the time window, the weather (design storms,
drizzle, blocked drains), special events, street incidents, the fault mix and how
residents complain. Quantities carry their units in the text (``"3h"``, ``"8 m/s"``,
``"6 km"``, ``"0.8 mm/h"``); unknown keys, missing units and impossible values are
rejected with the path of the offending key::

    rainstorm-50y.yaml: weather.storms.0.duration: bad duration '3 hours' (use e.g. ...)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gridwatch.errors import ConfigError

SCENARIO_DIR = Path(__file__).parent / "scenarios"


class ScenarioError(ConfigError):
    """A scenario file that cannot be used."""


# -- quantities with units ------------------------------------------------------------

_NUM = r"\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*"
_DURATION_UNITS = {
    "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
}  # fmt: skip
_SPEED_UNITS = {"m/s": 1.0, "km/h": 1 / 3.6}
_LENGTH_UNITS = {"m": 1.0, "km": 1000.0}
_INTENSITY_UNITS = {"mm/h": 1.0}


def _quantity(what: str, units: dict[str, float], example: str) -> Any:
    pattern = re.compile(_NUM + r"(" + "|".join(re.escape(u) for u in units) + r")\s*$")

    def parse(value: Any) -> float:
        if isinstance(value, timedelta) and what == "duration":
            return value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(f"bad {what} {value!r}: give a number with a unit (e.g. {example})")
        m = pattern.match(value)
        if m is None:
            raise ValueError(f"bad {what} {value!r} (use e.g. {example})")
        return float(m.group(1)) * units[m.group(2)]

    return BeforeValidator(parse)


_DURATION_PARSER = _quantity("duration", _DURATION_UNITS, "90s, 30min, 3h, 1d").func


def _positive(v: float) -> float:
    if v <= 0:
        raise ValueError("must be greater than zero")
    return v


def _non_negative(v: float) -> float:
    if v < 0:
        raise ValueError("must not be negative")
    return v


Duration = Annotated[float, _quantity("duration", _DURATION_UNITS, "90s, 30min, 3h, 1d")]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
Offset = Annotated[Duration, AfterValidator(_non_negative)]
_NonNeg = AfterValidator(_non_negative)
_Pos = AfterValidator(_positive)
Speed = Annotated[float, _quantity("speed", _SPEED_UNITS, "8 m/s, 30 km/h"), _NonNeg]
Length = Annotated[float, _quantity("length", _LENGTH_UNITS, "800 m, 6 km"), _Pos]
Intensity = Annotated[float, _quantity("intensity", _INTENSITY_UNITS, "0.8 mm/h"), _NonNeg]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

MALFORMED_CLASSES: dict[str, str] = {
    # class → the dead-letter reason ingest is expected to give
    "malformed_json": "malformed",
    "nan": "non_finite",
    "infinity": "non_finite",
    "huge_number": "non_finite",
    "duplicate_keys": "malformed",
    "number_as_string": "schema",
    "bool_as_number": "schema",
    "deep_nesting": "malformed",
    "non_utf8": "malformed",
    "oversize": "too_large",
    "unknown_device": "unknown_device",
    "topic_mismatch": "topic_mismatch",
    "future_ts": "future_ts",
    "stale_ts": "stale_ts",
}
MalformedClass = Literal[
    "malformed_json", "nan", "infinity", "huge_number", "duplicate_keys", "number_as_string",
    "bool_as_number", "deep_nesting", "non_utf8", "oversize", "unknown_device",
    "topic_mismatch", "future_ts", "stale_ts",
]  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CitySpec(_Strict):
    size: Literal["tiny", "small", "medium", "city"] = "small"
    seed: int = 7
    max_devices: Annotated[int, Field(ge=1)] | None = None


class StormSpec(_Strict):
    """A design storm crossing the district as a moving rain band."""

    hyetograph: Literal["chicago", "uniform"] = "chicago"
    return_period_y: Annotated[float, Field(ge=0.5, le=1000)]
    duration: PositiveDuration
    peak_ratio: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.4
    start: Offset = 0.0
    direction_deg: Annotated[float, Field(ge=0, lt=360)] = 90.0
    speed: Speed = 8.0
    width: Length = 8_000.0
    intensity_scale: Annotated[float, Field(gt=0, le=5)] = 1.0

    @field_validator("duration")
    @classmethod
    def _max_duration(cls, v: float) -> float:
        if v > 3 * 86400:
            raise ValueError("a design storm lasts at most 3 days")
        if v < 300:
            raise ValueError("a design storm lasts at least 5 minutes")
        return v


class WeatherSpec(_Strict):
    background: Literal["dry", "drizzle"] = "dry"
    drizzle_intensity: Intensity = 0.8
    drizzle_cover: Fraction = 0.5
    storms: list[StormSpec] = Field(default_factory=list, max_length=20)
    # Fraction of drainage capacity lost to leaves and debris (typhoons).
    drain_blockage: Fraction = 0.0
    wind: Speed = 0.0


class EventSpec(_Strict):
    kind: Literal["metro_event"] = "metro_event"
    station: str | None = None
    start: Offset
    duration: PositiveDuration
    attendance: Annotated[int, Field(ge=1, le=500_000)]


class IncidentSpec(_Strict):
    """Street incidents per camera per day (vendors appear in the evening)."""

    vendor_per_day: Annotated[float, Field(ge=0, le=50)] = 0.3
    garbage_per_day: Annotated[float, Field(ge=0, le=50)] = 0.1
    road_occupation_per_day: Annotated[float, Field(ge=0, le=50)] = 0.05


class FaultSpec(_Strict):
    """Fault rates. Per-device fractions for lasting faults, per-message for the rest."""

    stuck: Fraction = 0.0
    drift: Fraction = 0.0
    dropout: Fraction = 0.0
    battery_death: Fraction = 0.0
    clock_skew: Fraction = 0.0
    spike: Fraction = 0.0
    duplicate: Fraction = 0.0
    out_of_order: Fraction = 0.0
    malformed: Fraction = 0.0
    malformed_classes: list[MalformedClass] | None = None
    fault_duration: PositiveDuration = 1800.0


class ComplaintSpec(_Strict):
    report_probability: Fraction = 0.7
    delay_median: PositiveDuration = 480.0
    delay_max: PositiveDuration = 2700.0
    extra_callers_mean: Annotated[float, Field(ge=0, le=20)] = 0.6
    water_cm: Annotated[float, Field(gt=0, le=200)] = 15.0
    water_for: PositiveDuration = 600.0
    bike_ratio: Annotated[float, Field(gt=1.0, le=5)] = 1.2
    bike_for: PositiveDuration = 1200.0
    vendor_for: PositiveDuration = 1800.0
    garbage_for: PositiveDuration = 3600.0
    road_occupation_for: PositiveDuration = 2700.0
    crowding_for: PositiveDuration = 900.0

    @model_validator(mode="after")
    def _delays(self) -> ComplaintSpec:
        if self.delay_max < self.delay_median:
            raise ValueError("delay_max must not be shorter than delay_median")
        return self


class Scenario(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    description: str = ""
    seed: int = 42
    start: datetime
    duration: PositiveDuration
    tick: PositiveDuration = 10.0
    # Local time = UTC + offset; daily patterns (commutes, vendors) follow local time.
    utc_offset_h: Annotated[int, Field(ge=-12, le=14)] = 8
    city: CitySpec = CitySpec()
    weather: WeatherSpec = WeatherSpec()
    events: list[EventSpec] = Field(default_factory=list, max_length=50)
    incidents: IncidentSpec = IncidentSpec()
    faults: FaultSpec = FaultSpec()
    complaints: ComplaintSpec = ComplaintSpec()

    @field_validator("start", mode="before")
    @classmethod
    def _parse_start(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v)
            except ValueError as exc:
                raise ValueError(f"start {v!r} is not an RFC 3339 time") from exc
        if isinstance(v, datetime) and (v.tzinfo is None or v.utcoffset() is None):
            # PyYAML drops the offset of '...Z' times into naive UTC datetimes.
            raise ValueError("start needs a time zone, e.g. 2026-07-14T06:00:00Z")
        return v

    @field_validator("tick")
    @classmethod
    def _tick(cls, v: float) -> float:
        if v < 1 or v > 60 or 60 % v != 0 or v != int(v):
            raise ValueError("tick must be a whole number of seconds dividing 60 (e.g. 10s)")
        return v

    @model_validator(mode="after")
    def _window(self) -> Scenario:
        if self.duration > 14 * 86400:
            raise ValueError("duration: at most 14 days per run")
        for i, storm in enumerate(self.weather.storms):
            if storm.start >= self.duration:
                raise ValueError(f"weather.storms.{i}.start lies after the end of the run")
        for i, event in enumerate(self.events):
            if event.start >= self.duration:
                raise ValueError(f"events.{i}.start lies after the end of the run")
        return self

    def with_overrides(
        self,
        *,
        duration: str | None = None,
        size: str | None = None,
        seed: int | None = None,
        max_devices: int | None = None,
    ) -> Scenario:
        """A copy with CLI overrides applied and validated again."""
        doc = self.model_dump(mode="python")
        doc["duration"] = f"{self.duration}s"
        doc["tick"] = f"{self.tick}s"
        _respell(doc)
        if duration is not None:
            doc["duration"] = duration
            # A shorter run keeps only the storms and events that start inside it.
            try:
                end = _DURATION_PARSER(duration)
            except ValueError as exc:
                raise ScenarioError(f"{self.name}: --duration: {exc}") from exc
            doc["weather"]["storms"] = [
                s
                for s, spec in zip(doc["weather"]["storms"], self.weather.storms, strict=True)
                if spec.start < end
            ]
            doc["events"] = [
                e for e, spec in zip(doc["events"], self.events, strict=True) if spec.start < end
            ]
        if size is not None:
            doc["city"]["size"] = size
        if max_devices is not None:
            doc["city"]["max_devices"] = max_devices
        if seed is not None:
            doc["seed"] = seed
        return _validate(doc, f"{self.name} (overridden)")


def _respell(doc: dict[str, Any]) -> None:
    """Turn dumped SI numbers back into unit strings so they validate again."""
    w = doc["weather"]
    w["drizzle_intensity"] = f"{w['drizzle_intensity']} mm/h"
    w["wind"] = f"{w['wind']} m/s"
    for s in w["storms"]:
        s["duration"] = f"{s['duration']}s"
        s["start"] = f"{s['start']}s"
        s["speed"] = f"{s['speed']} m/s"
        s["width"] = f"{s['width']} m"
    for e in doc["events"]:
        e["start"] = f"{e['start']}s"
        e["duration"] = f"{e['duration']}s"
    doc["faults"]["fault_duration"] = f"{doc['faults']['fault_duration']}s"
    for key, value in list(doc["complaints"].items()):
        if key.endswith("_for") or key.startswith("delay_"):
            doc["complaints"][key] = f"{value}s"


def _validate(doc: Any, source: str) -> Scenario:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{source}: a scenario must be a mapping, not {type(doc).__name__}")
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"{source}: {loc}: {msg}")
        raise ScenarioError("\n".join(lines)) from exc


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    return _validate(doc, source)


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario file, or a shipped scenario by name (``rainstorm-50y``)."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        p = SCENARIO_DIR / f"{p.name}.yaml"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        shipped = ", ".join(sorted(f.stem for f in SCENARIO_DIR.glob("*.yaml")))
        raise ScenarioError(f"cannot read scenario {path}: {exc} (shipped: {shipped})") from exc
    return parse_scenario(text, p.name)


def shipped_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))
