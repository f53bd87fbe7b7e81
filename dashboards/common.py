"""Pieces every GridWatch dashboard shares: template variables, query filters, the
ticket annotation, thresholds and the dashboard frame.

Schema read by the queries (streams/influx_sink.py, ingest/metrics.py): readings
``water rain bike camera status`` (tags device, grid, district), ``assessment`` (tags
device, grid, district, kind), ``alert`` (tags grid, district, category, severity,
kind), ``ticket`` (tags grid, category, severity, state, event) and ``pipeline``
(tags stage, instance, reason).
"""

from __future__ import annotations

from collections.abc import Iterable

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dbmodel

from dashboards.influxql import InfluxAnnotation, datasource

# Filters: Grafana interpolates a regex-typed variable as `(a|b)` for several values
# and as the variable's allValue `.*` for "All", so `/^$var$/` matches either.
DISTRICT = '"district" =~ /^$district$/'
GRID = '"grid" =~ /^$grid$/'
SITE = '"device" =~ /^$site$/'
AREA = f"{DISTRICT} AND {GRID}"
TIME = "$timeFilter"
INTERVAL = "GROUP BY time($__interval)"
# QARTOD pass or not evaluated: panels that show "the" depth or rain leave suspect and
# failed readings (spikes, out-of-span values) out; the QC panels show them.
QC_GOOD = '"qc" < 3'

THRESHOLD_ALERT_CM = 7.6
THRESHOLD_IMPASSABLE_CM = 15.0
HORIZONS_MIN = (15, 30, 60)

ACTIVE_STATES = "pre_alert|open|acknowledged|dispatched"
OPEN_STATES = "open|acknowledged|dispatched"

TAGS = ["gridwatch"]


def _var(name: str, label: str, query: str, description: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(datasource())
        .query(query)
        .refresh(dbmodel.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dbmodel.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dbmodel.VariableOption(selected=True, text="All", value="$__all"))
    )


def district_variable() -> db.QueryVariable:
    return _var(
        "district",
        "区 District",
        'SHOW TAG VALUES WITH KEY = "district"',
        "District (区) of the device registry; every measurement but ticket carries it.",
    )


def grid_variable() -> db.QueryVariable:
    return _var(
        "grid",
        "网格 Grid",
        f'SHOW TAG VALUES WITH KEY = "grid" WHERE {DISTRICT}',
        "Comprehensive grid (网格) within the chosen districts.",
    )


def site_variable(measurements: Iterable[str] = ("water",)) -> db.QueryVariable:
    sources = ", ".join(f'"{m}"' for m in measurements)
    return _var(
        "site",
        "站点 Site",
        f'SHOW TAG VALUES FROM {sources} WITH KEY = "device" WHERE {AREA}',
        "Site = device id of the sensor or camera, within the chosen grids.",
    )


def ticket_annotation() -> InfluxAnnotation:
    """Tickets raised, drawn on every time series of the dashboard.

    Reads only what both writers of ``ticket`` provide (streams.influx_sink.ticket_point
    has state and event as tags, tickets.outbox.influx_line as fields; InfluxQL selects
    and filters either the same way); ``reason`` is empty where the relay omits it.
    """
    query = (
        'SELECT "ticket_id", "reason", "event", "state", "category", "severity" '
        f'FROM "ticket" WHERE "event" = \'create\' AND {GRID} AND {TIME}'
    )
    return (
        InfluxAnnotation("工单 Tickets", query)
        .icon_color("orange")
        .text_column("reason")
        .tags_column("category,severity,state")
        .title_column("ticket_id")
    )


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dbmodel.ThresholdsMode.ABSOLUTE)
        .steps([dbmodel.Threshold(value=v, color=c) for v, c in steps])
    )


def depth_thresholds() -> db.ThresholdsConfig:
    """7.6 cm (3 in, kerb-deep: pre-alert) and 15 cm (impassable for cars)."""
    return thresholds(
        (None, "green"), (THRESHOLD_ALERT_CM, "orange"), (THRESHOLD_IMPASSABLE_CM, "red")
    )


def risk_thresholds() -> db.ThresholdsConfig:
    return thresholds((None, "green"), (0.3, "yellow"), (0.6, "orange"), (0.8, "red"))


def frame(
    uid: str,
    title: str,
    description: str,
    *,
    variables: list[db.QueryVariable],
    time_from: str = "now-6h",
    refresh: str = "30s",
) -> db.Dashboard:
    """A dashboard with the common settings: tags, links to its siblings, annotation."""
    dash = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .time(time_from, "now")
        .refresh(refresh)
        .timezone("browser")
        .tooltip(dbmodel.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .link(
            db.DashboardLink("GridWatch")
            .type(dbmodel.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .annotation(ticket_annotation())
    )
    for variable in variables:
        dash = dash.with_variable(variable)
    return dash
