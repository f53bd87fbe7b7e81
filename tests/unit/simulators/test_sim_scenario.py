from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.scenario import (
    MALFORMED_CLASSES,
    MalformedClass,
    ScenarioError,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)

BASE = "name: t\nstart: 2026-07-14T07:00:00Z\nduration: 1h\n"

EXPECTED = {
    "dry-weekday", "moderate-rain", "rainstorm-50y", "typhoon", "rush-hour-event", "city-load"
}  # fmt: skip


def test_every_required_scenario_ships_and_validates() -> None:
    names = {p.stem for p in shipped_scenarios()}
    assert names >= EXPECTED
    for path in shipped_scenarios():
        sc = load_scenario(path)
        assert sc.name == path.stem


def test_shipped_scenarios_fit_their_purpose() -> None:
    storm = load_scenario("rainstorm-50y")
    assert storm.city.size == "small" and storm.duration <= 4 * 3600
    assert storm.weather.storms[0].return_period_y == 50
    typhoon = load_scenario("typhoon")
    assert typhoon.faults.dropout > 0 and typhoon.faults.battery_death > 0
    assert load_scenario("city-load").city.size == "city"
    assert load_scenario("rush-hour-event").events


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("foo: 1\n", "foo: unknown key"),
        ("weather: {storms: [{return_period_y: 5, duration: 2 hours}]}\n", "bad duration"),
        ("weather: {storms: [{return_period_y: 5, duration: 1h, speed: 9 m/h}]}\n", "bad speed"),
        ("weather: {storms: [{return_period_y: 5, duration: 1h, width: 3}]}\n", "bad length"),
        ("weather: {drizzle_intensity: 3 mm}\n", "bad intensity"),
        ("weather: {storms: [{return_period_y: 0, duration: 1h}]}\n", "return_period_y"),
        ("weather: {storms: [{return_period_y: 5, duration: 1h, start: 2h}]}\n", "after the end"),
        (
            "weather: {storms: [{return_period_y: 5, duration: 1h, peak_ratio: 1.5}]}\n",
            "peak_ratio",
        ),
        ("faults: {stuck: 1.5}\n", "faults.stuck"),
        ("faults: {malformed_classes: [gibberish]}\n", "malformed_classes"),
        ("city: {size: galaxy}\n", "city.size"),
        ("tick: 7s\n", "tick must"),
        ("complaints: {delay_median: 1h, delay_max: 10min}\n", "delay_max"),
        ("events: [{start: 10min, duration: 1h, attendance: -5}]\n", "attendance"),
    ],
)
def test_invalid_scenarios_say_what_and_where(extra: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(BASE + extra, "bad.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("bad.yaml: ")


def test_bare_numbers_without_units_are_refused() -> None:
    with pytest.raises(ScenarioError, match="give a number with a unit"):
        parse_scenario("name: t\nstart: 2026-07-14T07:00:00Z\nduration: 3600\n")


def test_start_needs_a_time_zone() -> None:
    with pytest.raises(ScenarioError, match="time zone"):
        parse_scenario("name: t\nstart: '2026-07-14T07:00:00'\nduration: 1h\n")


def test_not_a_mapping_and_not_yaml() -> None:
    with pytest.raises(ScenarioError, match="mapping"):
        parse_scenario("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        parse_scenario("a: [1, 2\n")


def test_unknown_shipped_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="rainstorm-50y"):
        load_scenario("no-such-scenario")


def test_overrides_revalidate() -> None:
    sc = load_scenario("rainstorm-50y")
    short = sc.with_overrides(duration="45min", size="tiny", seed=9)
    assert (short.duration, short.city.size, short.seed) == (2700.0, "tiny", 9)
    assert short.weather == sc.weather
    # A shorter run keeps only the storms that start inside it (this one starts at 15 min).
    assert sc.with_overrides(duration="10min").weather.storms == []
    with pytest.raises(ScenarioError, match="bad duration"):
        sc.with_overrides(duration="ten minutes")
    with pytest.raises(ScenarioError, match=r"city\.size"):
        sc.with_overrides(size="galaxy")


def test_malformed_catalogue_is_complete() -> None:
    assert set(MALFORMED_CLASSES) == set(MalformedClass.__args__)  # type: ignore[attr-defined]
    assert set(MALFORMED_CLASSES.values()) <= {
        "malformed", "schema", "unknown_device", "topic_mismatch", "too_large", "future_ts",
        "stale_ts", "non_finite",
    }  # fmt: skip


@given(
    value=st.floats(min_value=0.001, max_value=1e5, allow_nan=False),
    unit=st.sampled_from([("s", 1), ("min", 60), ("h", 3600), ("d", 86400)]),
)
def test_duration_units_convert(value: float, unit: tuple[str, int]) -> None:
    text = f"{value!r}{unit[0]}"
    sc = parse_scenario(BASE + f"faults: {{fault_duration: '{text}'}}\n")
    assert sc.faults.fault_duration == pytest.approx(value * unit[1])


@given(st.text(max_size=12))
def test_duration_parser_never_raises_anything_but_scenario_error(text: str) -> None:
    with contextlib.suppress(ScenarioError):
        parse_scenario(BASE + f"faults: {{fault_duration: {text!r}}}\n")


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
    st.text(max_size=10), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)  # fmt: skip
_KEYS = st.sampled_from(
    ["name", "start", "duration", "tick", "city", "weather", "events", "faults", "complaints",
     "seed", "utc_offset_h", "incidents", "bogus"]
)  # fmt: skip


@given(st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_any_document_is_a_scenario_or_a_scenario_error(doc: dict) -> None:
    import yaml

    try:
        scenario = parse_scenario(yaml.safe_dump(doc))
    except ScenarioError:
        return  # the only error allowed; anything else fails the test
    assert scenario.duration > 0
