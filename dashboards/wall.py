"""城市运行 wall display: the operations centre's 4K overview (home dashboard).

Row 1: KPI stats; below: the sensor map (risk and status), open tickets by grid, the
latest alerts, depth and rain over time. Kiosk-friendly: no variable needs touching
(every variable defaults to All), 10 s refresh, dark theme.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, common, geomap, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dbmodel
from grafana_foundation_sdk.models import geomap as gmodel

from dashboards.common import (
    ACTIVE_STATES,
    AREA,
    GRID,
    INTERVAL,
    OPEN_STATES,
    TIME,
    depth_thresholds,
    district_variable,
    frame,
    grid_variable,
    risk_thresholds,
    thresholds,
)
from dashboards.gazetteer import GAZETTEER_URL
from dashboards.influxql import InfluxQL, datasource
from dashboards.panels import at, bars, grid_table, kpi, override, ts

UID = "gridwatch-wall"


def active_incidents() -> stat.Panel:
    return kpi(
        "活跃事件",
        "Active incidents: distinct tickets (one per incident key) that were open, "
        "acknowledged or dispatched within the time range (ticket events).",
        InfluxQL(
            'SELECT count(distinct("ticket_id")) AS "incidents" FROM "ticket" '
            f'WHERE "state" =~ /^({OPEN_STATES})$/ AND {GRID} AND {TIME}'
        ),
        thresholds=thresholds((None, "green"), (1, "orange"), (5, "red")),
    )


def pre_alerts() -> stat.Panel:
    return kpi(
        "预警",
        "Pre-alerts: tickets in the forecast-driven pre_alert state in the time range "
        "(未诉先办: raised before any complaint).",
        InfluxQL(
            'SELECT count(distinct("ticket_id")) AS "pre_alerts" FROM "ticket" '
            f"WHERE \"state\" = 'pre_alert' AND {GRID} AND {TIME}"
        ),
        thresholds=thresholds((None, "blue"), (1, "yellow")),
    )


def sla_breaches() -> stat.Panel:
    return kpi(
        "超时工单",
        "SLA breaches: acknowledge or resolve targets missed in the time range "
        "(ticket events with event = sla_breach).",
        InfluxQL(
            'SELECT count("ticket_id") AS "breaches" FROM "ticket" '
            f"WHERE \"event\" = 'sla_breach' AND {GRID} AND {TIME}"
        ),
        thresholds=thresholds((None, "green"), (1, "red")),
    )


def pre_emption_rate() -> stat.Panel:
    return kpi(
        "先于投诉率",
        "Pre-emption rate: share of 12345 complaints that found a proactive ticket already "
        "open. Reads field pre_empted (0/1) of ticket events with event = complaint.",
        InfluxQL(
            'SELECT mean("pre_empted") AS "pre_emption_rate" FROM "ticket" '
            f"WHERE \"event\" = 'complaint' AND {GRID} AND {TIME}"
        ),
        unit="percentunit",
        decimals=0,
        thresholds=thresholds((None, "red"), (0.5, "orange"), (0.8, "green")),
    )


def lead_minutes() -> stat.Panel:
    return kpi(
        "提前分钟",
        "Median minutes by which the proactive ticket preceded the first complaint "
        "(field lead_min of ticket events with event = complaint).",
        InfluxQL(
            'SELECT median("lead_min") AS "lead_min" FROM "ticket" '
            f"WHERE \"event\" = 'complaint' AND {GRID} AND {TIME}"
        ),
        unit="m",
        thresholds=thresholds((None, "orange"), (10, "green")),
    )


def rain_now() -> stat.Panel:
    return kpi(
        "当前雨强",
        "Rain now: highest intensity reported by any rain gauge in the last 15 minutes.",
        InfluxQL(
            'SELECT max("intensity_mm_h") AS "intensity_mm_h" FROM "rain" '
            f"WHERE {AREA} AND time > now() - 15m"
        ),
        unit="mm/h",
        decimals=1,
        thresholds=thresholds((None, "green"), (10, "yellow"), (30, "orange"), (50, "red")),
    )


def rain_next_hour() -> stat.Panel:
    return kpi(
        "未来1小时雨量",
        "Rain next hour: highest median forecast (field f60_q50 of rain assessments) "
        "issued in the last 15 minutes.",
        InfluxQL(
            'SELECT max("f60_q50") AS "f60_q50" FROM "assessment" '
            f"WHERE \"kind\" = 'rain' AND {AREA} AND time > now() - 15m"
        ),
        unit="mm/h",
        decimals=1,
        thresholds=thresholds((None, "green"), (10, "yellow"), (30, "orange"), (50, "red")),
    )


def max_risk() -> stat.Panel:
    return kpi(
        "最高风险",
        "Highest flood/overflow risk (0-1) assessed for any device in the last 15 minutes.",
        InfluxQL(
            f'SELECT max("risk") AS "risk" FROM "assessment" WHERE {AREA} AND time > now() - 15m'
        ),
        unit="percentunit",
        thresholds=risk_thresholds(),
    )


def qc_thresholds() -> db.ThresholdsConfig:
    """QARTOD flags: 1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing."""
    return thresholds((None, "green"), (2, "blue"), (3, "orange"), (4, "red"), (9, "purple"))


def sensor_map() -> geomap.Panel:
    """Every sensor at its registered position, coloured by risk; a second layer shows
    the last quality flag (status) of each device."""
    location = (
        common.FrameGeometrySource()
        .mode(cm.FrameGeometrySourceMode.LOOKUP)
        .lookup("device")
        .gazetteer(GAZETTEER_URL)
    )

    def layer(name: str, ref: str, field: str) -> common.MapLayerOptions:
        return (
            common.MapLayerOptions()
            .type("markers")
            .name(name)
            .location(location)
            .tooltip(True)
            .filter_data({"id": "byRefId", "options": ref})
            .config(
                {
                    "showLegend": True,
                    "style": {
                        "color": {"field": field, "fixed": "green"},
                        "opacity": 0.85,
                        "size": {"fixed": 7, "max": 14, "min": 5},
                        "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                    },
                }
            )
        )

    risk = InfluxQL(
        f'SELECT last("risk") AS "risk" FROM "assessment" WHERE {AREA} AND {TIME} GROUP BY "device"'
    ).table()
    status = InfluxQL(
        'SELECT last("qc") AS "qc" FROM "water", "rain", "bike", "camera" '
        f'WHERE {AREA} AND {TIME} GROUP BY "device"'
    ).table()
    return (
        geomap.Panel()
        .title("传感器风险地图")
        .description(
            "Sensor map: every device at its registry position (gazetteer), coloured by its "
            "latest risk (0-1, layer 风险) and its last QC flag (layer 状态: 1 pass, "
            "3 suspect, 4 fail, 9 missing)."
        )
        .datasource(datasource())
        .targets([risk.ref_id("A"), status.ref_id("B")])
        .view(geomap.MapViewConfig().id("fit").zoom(14).all_layers(True))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(False).show_scale(True))
        .basemap(common.MapLayerOptions().type("default").name("底图"))
        .layers([layer("风险 Risk", "A", "risk"), layer("状态 Status", "B", "qc")])
        .tooltip(geomap.TooltipOptions().mode(gmodel.TooltipMode.DETAILS))
        .thresholds(risk_thresholds())
        .color_scheme(db.FieldColor().mode(dbmodel.FieldColorModeId.THRESHOLDS))
        .with_override(*override("qc", {"thresholds": qc_thresholds().build()}))
    )


def open_tickets_by_grid() -> bargauge.Panel:
    return bars(
        "各网格未结工单",
        "Open tickets by grid: distinct tickets per grid in an active state "
        "(pre_alert, open, acknowledged, dispatched) in the time range.",
        [
            InfluxQL(
                'SELECT count(distinct("ticket_id")) AS "open" FROM "ticket" '
                f'WHERE "state" =~ /^({ACTIVE_STATES})$/ AND {GRID} AND {TIME} GROUP BY "grid"'
            ).alias("$tag_grid")
        ],
        thresholds=thresholds((None, "green"), (1, "orange"), (3, "red")),
    )


def latest_alerts() -> table.Panel:
    return grid_table(
        "最新告警",
        "Latest alerts (forecast, observed, clear...) with their reason, newest first.",
        [
            InfluxQL(
                'SELECT "grid", "category", "severity", "kind", "probability", "lead_min", '
                f'"why" FROM "alert" WHERE {AREA} AND {TIME} ORDER BY time DESC LIMIT 30'
            )
        ],
    )


def depth_by_grid() -> timeseries.Panel:
    return ts(
        "积水深度（各网格最大）",
        "Deepest standing water per grid (cm); dashed lines at 7.6 cm (pre-alert) and 15 cm "
        "(impassable). Tickets raised appear as annotations.",
        [
            InfluxQL(
                f'SELECT max("level_cm") FROM "water" WHERE {AREA} AND {TIME} '
                f'{INTERVAL}, "grid" fill(none)'
            ).alias("$tag_grid")
        ],
        unit="lengthcm",
        thresholds=depth_thresholds(),
    )


def rain_by_district() -> timeseries.Panel:
    return ts(
        "雨强与一小时预报",
        "Rain intensity per district (mm/h, mean of gauges) and the +60 min median forecast "
        "of the rain assessments.",
        [
            InfluxQL(
                f'SELECT mean("intensity_mm_h") FROM "rain" WHERE {AREA} AND {TIME} '
                f'{INTERVAL}, "district" fill(none)'
            ).alias("实测 $tag_district"),
            InfluxQL(
                'SELECT mean("f60_q50") FROM "assessment" '
                f"WHERE \"kind\" = 'rain' AND {AREA} AND {TIME} "
                f'{INTERVAL}, "district" fill(none)'
            ).alias("预报+60 $tag_district"),
        ],
        unit="mm/h",
    )


def dashboard() -> db.Dashboard:
    dash = frame(
        UID,
        "城市运行 · 总览",
        "City operations wall (4K, kiosk): sensors, risk, tickets and KPIs of GridWatch.",
        variables=[district_variable(), grid_variable()],
        time_from="now-3h",
        refresh="10s",
    )
    kpis = [
        active_incidents,
        pre_alerts,
        sla_breaches,
        pre_emption_rate,
        lead_minutes,
        rain_now,
        rain_next_hour,
        max_risk,
    ]
    for i, make in enumerate(kpis):
        dash = dash.with_panel(at(make(), 3 * i, 0, 3, 5))
    dash = dash.with_panel(at(sensor_map(), 0, 5, 14, 20))
    dash = dash.with_panel(at(open_tickets_by_grid(), 14, 5, 10, 10))
    dash = dash.with_panel(at(latest_alerts(), 14, 15, 10, 10))
    dash = dash.with_panel(at(depth_by_grid(), 0, 25, 12, 10))
    dash = dash.with_panel(at(rain_by_district(), 12, 25, 12, 10))
    return dash
