"""Every query of every committed dashboard, run against the real InfluxDB after a short
real storm through the real pipeline (tests/integration/dashboards/storm.py), with
template variables substituted as Grafana substitutes them."""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboards.build import load_generated
from dashboards.queries import (
    PanelQuery,
    panel_queries,
    substitute,
    time_from_of,
    used_variables,
)
from gridwatch.influx import query, rows
from gridwatch.isolation import isolated
from gridwatch.registry import Registry
from gridwatch.settings import InfluxSettings
from gridwatch.stack import Stack

from .storm import Storm, run_storm, write_supplement

pytestmark = pytest.mark.integration

MODELS = load_generated()
QUERIES = [pq for stem, model in MODELS.items() for pq in panel_queries(stem, model)]
# Grafana's $__interval for a few hours on a wide panel. The pipeline counters come every
# 5 s of wall-clock time and the storm's workers live about a minute, so their rates need
# 5 s buckets (what Grafana picks for the last hour).
INTERVAL = "15s"
INTERVALS = {"pipeline": "5s"}
OPEN_STATES = {"open", "acknowledged", "dispatched"}


@pytest.fixture(scope="module")
def storm(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storm]:
    """The real storm in its own topics, consumer group, database and ticket store
    (isolated as the ``settings`` and ``e2e_settings`` fixtures isolate a test)."""
    base = stack.settings
    tmp = tmp_path_factory.mktemp("dashstorm")
    settings = isolated(
        base,
        tickets=base.tickets.model_copy(update={"db_url": f"sqlite:///{tmp}/tickets.db"}),
        registry_dir=tmp / "city",
    )
    db = settings.influx.database
    result = run_storm(settings, tmp / "run")
    asyncio.run(write_supplement(settings, Registry.from_dir(settings.registry_dir)))
    try:
        yield result
    finally:
        httpx.post(f"{base.influx.url}/query", data={"q": f'DROP DATABASE "{db}"'})


@pytest.fixture(scope="module")
def storm_influx(storm: Storm) -> InfluxSettings:
    return storm.settings.influx


def run_query(influx: InfluxSettings, pq: PanelQuery, **values: Any) -> list[dict[str, Any]]:
    model = MODELS[pq.dashboard]
    interval = INTERVALS.get(pq.dashboard, INTERVAL)
    text = substitute(pq.query, model, values, time_from=time_from_of(model), interval=interval)
    assert not used_variables(text), text
    return asyncio.run(query(influx, text))


def outer(q: str) -> str:
    """The query without its subqueries (their aliases are not output columns)."""
    while (start := q.find("(SELECT")) >= 0:
        depth = 0
        for end in range(start, len(q)):
            depth += {"(": 1, ")": -1}.get(q[end], 0)
            if depth == 0:
                break
        q = q[:start] + "(…)" + q[end + 1 :]
    return q


def expected_columns(q: str) -> set[str]:
    return set(re.findall(r'\bAS "([^"]+)"', outer(q)))


def expected_tags(q: str) -> set[str]:
    """Tags of the outermost GROUP BY."""
    text = outer(q)
    if "GROUP BY" not in text:
        return set()
    clause = re.split(r" fill\(| ORDER | LIMIT ", text.rsplit("GROUP BY", 1)[1])[0]
    return set(re.findall(r'"(\w+)"', clause))


def test_expected_tags_reads_the_outer_group_by() -> None:
    q = (
        'SELECT sum("d") FROM (SELECT max("x") AS "d" GROUP BY "a") '
        'WHERE t GROUP BY time(1m), "b" fill(none)'
    )
    assert expected_tags(q) == {"b"}
    assert expected_columns(q) == set()


@pytest.mark.parametrize(
    "pq", QUERIES, ids=[f"{q.dashboard}/{q.source}/{q.title}/{q.ref_id}" for q in QUERIES]
)
def test_query_returns_series_with_expected_fields_and_tags(
    storm_influx: InfluxSettings, pq: PanelQuery
) -> None:
    series = run_query(storm_influx, pq)
    assert series, f"no series for {pq.query}"
    data = rows(series)
    assert data, f"series without values for {pq.query}"
    if pq.source == "variable":
        assert all(r["value"] for r in data)
        return
    columns = {c for s in series for c in s["columns"]}
    missing = expected_columns(pq.query) - columns
    assert not missing, f"columns {missing} missing from {sorted(columns)}"
    for tag in expected_tags(pq.query):
        assert all(tag in (s.get("tags") or {}) for s in series), f"tag {tag} missing"
    if "/^op_/" in pq.query:
        assert {"last_op_meituan", "last_op_hellobike"} <= columns
    values = [v for r in data for k, v in r.items() if k != "time" and v is not None]
    assert values, f"only nulls for {pq.query}"


def _one(title: str, dashboard: str = "wall") -> PanelQuery:
    return next(q for q in QUERIES if q.dashboard == dashboard and q.title == title)


def _value(series: list[dict[str, Any]], column: str) -> Any:
    (row,) = rows(series)
    return row[column]


def _tickets_reaching(storm: Storm, states: set[str]) -> int:
    return len({a["ticket_id"] for a in storm.audit if a["to_state"] in states})


def test_storm_exercised_what_the_dashboards_show(storm: Storm) -> None:
    """The real storm must produce every kind of event the panels draw, or the panel
    tests below would prove little."""
    r = storm.result
    assert _tickets_reaching(storm, OPEN_STATES) > 0
    assert _tickets_reaching(storm, {"pre_alert"}) > 0
    assert storm.sweep["breaches"] > 0
    assert any(c["pre_empted"] for c in r.complaints)
    assert sum(r.dead_letters.values()) > 0
    reasons = [t["why"] for t in r.tickets if t["category"] == "device_fault"]
    assert any(" silent (" in w for w in reasons), reasons
    assert any(" dead (" in w for w in reasons), reasons


def _points(storm: Storm, **match: Any) -> list[dict[str, Any]]:
    """The ticket points InfluxDB holds (``Storm.ticket_points``) matching tags/fields;
    a set value matches any of its members."""
    return [
        p
        for p in storm.ticket_points
        if all(p.get(k) in v if isinstance(v, set) else p.get(k) == v for k, v in match.items())
    ]


def test_wall_kpis_count_the_ticket_events_the_store_published(
    storm: Storm, storm_influx: InfluxSettings
) -> None:
    """Every KPI equals what the ticket store's outbox events give once written to
    InfluxDB. Ticket points are keyed by grid, category, severity, state, event and
    millisecond, so events that agree on all of these (two sites' forecasts from one
    reading time, the breaches of one sweep) keep only the last one: the expected
    figures follow that rule, and the store's own figures bound them."""
    active = {p["ticket_id"] for p in _points(storm, state=OPEN_STATES)}
    pre_alert = {p["ticket_id"] for p in _points(storm, state="pre_alert")}
    breaches = _points(storm, event="sla_breach")
    complaints = _points(storm, event="complaint")
    leads = [p["lead_min"] for p in complaints if "lead_min" in p]
    expected = {
        "活跃事件": ("incidents", len(active)),
        "预警": ("pre_alerts", len(pre_alert)),
        "超时工单": ("breaches", len(breaches)),
        "先于投诉率": ("pre_emption_rate", statistics.mean(p["pre_empted"] for p in complaints)),
        "提前分钟": ("lead_min", statistics.median(leads)),
    }
    for title, (column, value) in expected.items():
        assert _value(run_query(storm_influx, _one(title)), column) == pytest.approx(value), title
    assert 0 < len(active) <= _tickets_reaching(storm, OPEN_STATES)
    assert 0 < len(pre_alert) <= _tickets_reaching(storm, {"pre_alert"})
    assert 0 < len(breaches) <= storm.sweep["breaches"]
    linked = [c for c in storm.result.complaints if c["ticket_id"]]
    assert 0 < len(complaints) <= len(linked)


def test_rain_kpis_read_the_rain_jobs_grid_picture(storm_influx: InfluxSettings) -> None:
    """Rain now and next hour come from rain_grid (the rain job's per-grid picture):
    the storm is still raining at its end, so both are positive and the hour's rain
    (decaying nowcast) is below an hour at the current rate."""
    now = _value(run_query(storm_influx, _one("当前雨强")), "rate_mm_h")
    nxt = _value(run_query(storm_influx, _one("未来1小时雨量")), "next_60_mm")
    assert now > 0 and 0 < nxt <= now


def test_silent_and_dead_devices_match_the_device_fault_tickets(
    storm: Storm, storm_influx: InfluxSettings
) -> None:
    for pq in [q for q in QUERIES if q.title == "静默与失联设备"]:
        health = "silent" if pq.ref_id == "A" else "dead"
        stored = {
            p["ticket_id"]
            for p in _points(storm, category="device_fault")
            if f" {health} (" in p["reason"]
        }
        in_store = {a["ticket_id"] for a in storm.audit if f" {health} (" in a["reason"]}
        assert stored and stored <= in_store, health
        assert _value(run_query(storm_influx, pq), health) == len(stored)


def test_grid_variable_filters_series(storm_influx: InfluxSettings) -> None:
    pq = _one("积水深度（各网格最大）")
    every = {s["tags"]["grid"] for s in run_query(storm_influx, pq)}
    assert len(every) >= 3
    first, second, *_ = sorted(every)
    one = {s["tags"]["grid"] for s in run_query(storm_influx, pq, grid=[first])}
    assert one == {first}
    two = {s["tags"]["grid"] for s in run_query(storm_influx, pq, grid=[first, second])}
    assert two == {first, second}


def test_district_variable_narrows_the_grid_variable(
    storm: Storm, storm_influx: InfluxSettings
) -> None:
    registry = Registry.from_dir(storm.settings.registry_dir)
    grid_var = next(q for q in QUERIES if q.source == "variable" and q.title == "grid")
    found = asyncio.run(query(storm_influx, 'SHOW TAG VALUES WITH KEY = "district"'))
    district = sorted(r["value"] for r in rows(found))[0]
    grids = {r["value"] for r in rows(run_query(storm_influx, grid_var, district=[district]))}
    assert grids and all(registry.ancestor(g, "district") == district for g in grids)


def test_site_variable_lists_devices_of_its_kind(
    storm: Storm, storm_influx: InfluxSettings
) -> None:
    per_kind = storm.result.per_device
    site = next(
        q
        for q in QUERIES
        if q.dashboard == "waterlogging" and q.source == "variable" and q.title == "site"
    )
    assert {r["value"] for r in rows(run_query(storm_influx, site))} == set(per_kind["water"])
    devices = next(
        q
        for q in QUERIES
        if q.dashboard == "devices" and q.source == "variable" and q.title == "site"
    )
    every = {d for kind in per_kind.values() for d in kind}
    assert {r["value"] for r in rows(run_query(storm_influx, devices))} == every


def test_repeated_site_panel_shows_one_site_with_its_forecast(
    storm: Storm, storm_influx: InfluxSettings
) -> None:
    forecast = next(
        q
        for q in QUERIES
        if q.dashboard == "waterlogging"
        and q.title.startswith("积水深度与预报")
        and q.ref_id == "B"
    )
    (deepest,) = rows(
        asyncio.run(query(storm_influx, 'SELECT max("level_cm"), "device" FROM "water"'))
    )
    data = rows(run_query(storm_influx, forecast, site=deepest["device"]))
    peak = max(r["+30"] for r in data if r["+30"] is not None)
    assert 0 < peak < 2 * deepest["max"]
    assert all(r["+30 q10"] <= r["+30"] <= r["+30 q90"] for r in data if r["+30"] is not None)


def test_ticket_annotation_carries_text_and_tags(
    storm: Storm, storm_influx: InfluxSettings
) -> None:
    anno = next(q for q in QUERIES if q.dashboard == "wall" and q.source == "annotation")
    data = rows(run_query(storm_influx, anno))
    assert {r["ticket_id"] for r in data} <= storm.ticket_ids
    assert len(data) == len(_points(storm, event="create"))
    assert all(r["reason"] and r["category"] and r["severity"] for r in data)


def test_preview_draws_every_dashboard_with_data(
    storm_influx: InfluxSettings, tmp_path: Path
) -> None:
    from dashboards.preview import preview

    result = preview(storm_influx, MODELS, tmp_path, interval="5s")  # see INTERVALS
    assert set(result) == set(MODELS)
    for stem, (path, with_data, total) in result.items():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert with_data == total == len(MODELS[stem]["panels"]), stem


def test_preview_refuses_a_missing_database_in_one_line(
    storm_influx: InfluxSettings, tmp_path: Path
) -> None:
    from dashboards.preview import preview
    from gridwatch.errors import SinkError

    missing = storm_influx.model_copy(update={"database": "gw_no_such_db"})
    with pytest.raises(SinkError, match="gw_no_such_db"):
        preview(missing, MODELS, tmp_path)
