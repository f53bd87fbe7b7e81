"""Every query of every committed dashboard, run against the real InfluxDB after a short
simulated storm (tests/integration/dashboards/storm.py), with template variables
substituted as Grafana substitutes them."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
from gridwatch.influx import InfluxWriter, query, rows
from gridwatch.settings import InfluxSettings
from gridwatch.stack import Stack

from .storm import BIKE, CAMERA, RAIN, STATUS, WATER, relay_ticket_lines, storm_points

pytestmark = pytest.mark.integration

MODELS = load_generated()
QUERIES = [pq for stem, model in MODELS.items() for pq in panel_queries(stem, model)]
DEVICES = {**WATER, **RAIN, **BIKE, **CAMERA, **STATUS}


@contextmanager
def storm_database(stack: Stack, *, relay_tickets: bool) -> Iterator[InfluxSettings]:
    """A unique database (made like the ``settings`` fixture's) holding the storm; ticket
    events mapped by streams.influx_sink, or written as the tickets outbox relay writes
    them."""
    base = stack.settings.influx
    db = f"gw_dash_{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{base.url}/query", data={"q": f'CREATE DATABASE "{db}"'}, timeout=10)
    response.raise_for_status()
    influx = base.model_copy(update={"database": db})
    end = datetime.now(UTC).replace(microsecond=0)

    async def write() -> int:
        writer = InfluxWriter(influx)
        try:
            n = await writer.write(storm_points(end, tickets=not relay_tickets))
            if relay_tickets:
                await writer.transport.write("\n".join(relay_ticket_lines(end)))
            return n
        finally:
            await writer.close()

    assert asyncio.run(write()) > 1000
    try:
        yield influx
    finally:
        httpx.post(f"{base.url}/query", data={"q": f'DROP DATABASE "{db}"'}, timeout=10)


@pytest.fixture(scope="module")
def storm_influx(stack: Stack) -> Iterator[InfluxSettings]:
    """Shared by this module's read-only tests."""
    with storm_database(stack, relay_tickets=False) as influx:
        yield influx


@pytest.fixture(scope="module")
def relay_influx(stack: Stack) -> Iterator[InfluxSettings]:
    with storm_database(stack, relay_tickets=True) as influx:
        yield influx


def run_query(influx: InfluxSettings, pq: PanelQuery, **values: Any) -> list[dict[str, Any]]:
    model = MODELS[pq.dashboard]
    text = substitute(pq.query, model, values, time_from=time_from_of(model))
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


@pytest.mark.parametrize(
    ("title", "column", "expected"),
    [
        ("活跃事件", "incidents", 2),  # t-1 (open..dispatched) and t-2 (open, later resolved)
        ("预警", "pre_alerts", 1),
        ("超时工单", "breaches", 1),
        ("先于投诉率", "pre_emption_rate", 0.5),
        ("提前分钟", "lead_min", 22.0),
    ],
)
def test_wall_kpis_count_the_storm_tickets(
    storm_influx: InfluxSettings, title: str, column: str, expected: float
) -> None:
    assert _value(run_query(storm_influx, _one(title)), column) == pytest.approx(expected)


TICKET_QUERIES = [q for q in QUERIES if 'FROM "ticket"' in q.query]
NOT_FROM_RELAY = {"先于投诉率", "提前分钟"}  # pre_empted, lead_min: no writer yet


@pytest.mark.parametrize(
    "pq",
    [q for q in TICKET_QUERIES if q.title not in NOT_FROM_RELAY],
    ids=[f"{q.dashboard}/{q.title}" for q in TICKET_QUERIES if q.title not in NOT_FROM_RELAY],
)
def test_ticket_queries_also_read_the_outbox_relay_format(
    relay_influx: InfluxSettings, pq: PanelQuery
) -> None:
    """tickets.outbox.influx_line stores state and event as fields, not tags: the
    ticket panels must read that format too."""
    data = rows(run_query(relay_influx, pq))
    assert data and any(v is not None for r in data for k, v in r.items() if k != "time")


@pytest.mark.parametrize(
    ("title", "column", "expected"),
    [("活跃事件", "incidents", 2), ("预警", "pre_alerts", 1), ("超时工单", "breaches", 1)],
)
def test_wall_kpis_agree_on_both_ticket_formats(
    relay_influx: InfluxSettings, title: str, column: str, expected: float
) -> None:
    assert _value(run_query(relay_influx, _one(title)), column) == pytest.approx(expected)


def test_grid_variable_filters_series(storm_influx: InfluxSettings) -> None:
    pq = _one("积水深度（各网格最大）")
    every = {s["tags"]["grid"] for s in run_query(storm_influx, pq)}
    assert every == {"G01", "G02", "G03"}
    one = {s["tags"]["grid"] for s in run_query(storm_influx, pq, grid=["G03"])}
    assert one == {"G03"}
    two = {s["tags"]["grid"] for s in run_query(storm_influx, pq, grid=["G01", "G02"])}
    assert two == {"G01", "G02"}


def test_district_variable_narrows_the_grid_variable(storm_influx: InfluxSettings) -> None:
    grid_var = next(q for q in QUERIES if q.source == "variable" and q.title == "grid")
    grids = {r["value"] for r in rows(run_query(storm_influx, grid_var, district=["D2"]))}
    assert grids == {"G03"}


def test_site_variable_lists_devices_of_its_kind(storm_influx: InfluxSettings) -> None:
    site = next(
        q
        for q in QUERIES
        if q.dashboard == "waterlogging" and q.source == "variable" and q.title == "site"
    )
    assert {r["value"] for r in rows(run_query(storm_influx, site))} == set(WATER)
    devices = next(
        q
        for q in QUERIES
        if q.dashboard == "devices" and q.source == "variable" and q.title == "site"
    )
    assert {r["value"] for r in rows(run_query(storm_influx, devices))} == set(DEVICES)


def test_repeated_site_panel_shows_one_site_with_its_forecast(
    storm_influx: InfluxSettings,
) -> None:
    forecast = next(
        q
        for q in QUERIES
        if q.dashboard == "waterlogging"
        and q.title.startswith("积水深度与预报")
        and q.ref_id == "B"
    )
    data = rows(run_query(storm_influx, forecast, site="wl-001"))
    peak = max(r["+30"] for r in data if r["+30"] is not None)
    assert 15.0 < peak < 25.0  # wl-001 peaks at about 22 cm
    assert all(r["+30 q10"] <= r["+30"] <= r["+30 q90"] for r in data if r["+30"] is not None)


def test_ticket_annotation_carries_text_and_tags(storm_influx: InfluxSettings) -> None:
    anno = next(q for q in QUERIES if q.dashboard == "wall" and q.source == "annotation")
    data = rows(run_query(storm_influx, anno))
    assert {r["ticket_id"] for r in data} == {"t-1", "t-2"}
    assert all(r["reason"] and r["category"] and r["severity"] for r in data)


def test_preview_draws_every_dashboard_with_data(
    storm_influx: InfluxSettings, tmp_path: Path
) -> None:
    from dashboards.preview import preview

    result = preview(storm_influx, MODELS, tmp_path)
    assert set(result) == set(MODELS)
    for stem, (path, with_data, total) in result.items():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert with_data == total == len(MODELS[stem]["panels"]), stem
