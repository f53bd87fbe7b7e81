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
    DISTRICT,
    GRID,
    INTERVAL,
    OPEN_STATES,
    QC_GOOD,
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
from dashboards.panels import at, bars, color_by_regex, grid_table, kpi, override, ts

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
        "Rain now: highest rain rate of any grid in the last 15 minutes (field rate_mm_h of "
        "rain_grid, the rain job's per-grid picture from each grid's nearest gauge).",
        InfluxQL(
            'SELECT max("rate_mm_h") AS "rate_mm_h" FROM "rain_grid" '
            f"WHERE {AREA} AND time > now() - 15m"
        ),
        unit="mm/h",
        decimals=1,
        thresholds=thresholds((None, "green"), (10, "yellow"), (20, "orange"), (50, "red")),
    )


def rain_next_hour() -> stat.Panel:
    return kpi(
        "未来1小时雨量",
        "Rain next hour: the most rain any grid is expected to get in the next 60 minutes "
        "(median nowcast, field next_60_mm of rain_grid), issued in the last 15 minutes.",
        InfluxQL(
            'SELECT max("next_60_mm") AS "next_60_mm" FROM "rain_grid" '
            f"WHERE {AREA} AND time > now() - 15m"
        ),
        unit="lengthmm",
        decimals=1,
        thresholds=thresholds((None, "green"), (10, "yellow"), (20, "orange"), (50, "red")),
    )


def storm_mode() -> stat.Panel:
    """Per district: share of its grids in heavy rain (≥ 10 mm/h) and its storm cells;
    storm mode from half the grids on (streams.rain_scoring.RainParams)."""
    panel = kpi(
        "暴雨模式",
        "Storm mode per district: share of its grids in heavy rain (>= 10 mm/h; storm mode "
        "from 50 %, red) and the number of storm cells (touching heavy-rain grids), from "
        "the rain job's measurement storm in the last 15 minutes.",
        InfluxQL(
            'SELECT last("heavy_share") AS "heavy_share" FROM "storm" '
            f'WHERE {DISTRICT} AND time > now() - 15m GROUP BY "district"'
        ).alias("$tag_district 强降雨网格"),
        unit="percentunit",
        thresholds=thresholds((None, "green"), (0.25, "yellow"), (0.5, "red")),
    )
    cells = InfluxQL(
        'SELECT last("cells") AS "cells" FROM "storm" '
        f'WHERE {DISTRICT} AND time > now() - 15m GROUP BY "district"'
    ).alias("$tag_district 雨团")
    return (
        panel.with_target(cells.ref_id("B"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .with_override(
            *color_by_regex(
                ".*雨团", {"unit": "short", "color": {"mode": "fixed", "fixedColor": "blue"}}
            )
        )
    )


def max_risk() -> stat.Panel:
    return kpi(
        "最高风险",
        "Highest flood/overflow risk (0-1) assessed for any water sensor or bike-parking "
        "site in the last 15 minutes (camera, rain and battery risks are on their own "
        "panels).",
        InfluxQL(
            'SELECT max("risk") AS "risk" FROM "assessment" WHERE "kind" =~ /^(water|bike)$/ '
            f"AND {AREA} AND time > now() - 15m"
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
        "Deepest standing water per grid (cm): the water assessments' value, left out when "
        "the stream QC flags it suspect or failed (spikes, stuck or out-of-span readings); "
        "dashed lines at 7.6 cm (pre-alert) and 15 cm (impassable). Tickets raised appear "
        "as annotations.",
        [
            InfluxQL(
                f'SELECT max("value") FROM "assessment" WHERE "kind" = \'water\' AND {QC_GOOD} '
                f'AND {AREA} AND {TIME} {INTERVAL}, "grid" fill(none)'
            ).alias("$tag_grid")
        ],
        unit="lengthcm",
        thresholds=depth_thresholds(),
    )


def rain_by_district() -> timeseries.Panel:
    return ts(
        "雨强与一小时预报",
        "Rain per district: mean gauge intensity (mm/h) and the "
        "most rain any of its gauges expects in the next hour (mm, median nowcast, field "
        "f60_q50 of the rain assessments) on the right axis; readings and assessments "
        "flagged suspect or failed are left out.",
        [
            InfluxQL(
                f'SELECT mean("intensity_mm_h") FROM "rain" WHERE {QC_GOOD} AND {AREA} AND {TIME} '
                f'{INTERVAL}, "district" fill(none)'
            ).alias("实测 $tag_district"),
            InfluxQL(
                'SELECT max("f60_q50") FROM "assessment" '
                f"WHERE \"kind\" = 'rain' AND {QC_GOOD} AND {AREA} AND {TIME} "
                f'{INTERVAL}, "district" fill(none)'
            ).alias("未来1小时 $tag_district"),
        ],
        unit="mm/h",
    ).with_override(
        *color_by_regex(
            "未来1小时.*",
            {
                "unit": "lengthmm",
                "custom.axisPlacement": "right",
                "custom.lineStyle": {"fill": "dash", "dash": [10, 10]},
            },
        )
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
    dash = dash.with_panel(at(open_tickets_by_grid(), 14, 5, 5, 10))
    dash = dash.with_panel(at(storm_mode(), 19, 5, 5, 10))
    dash = dash.with_panel(at(latest_alerts(), 14, 15, 10, 10))
    dash = dash.with_panel(at(depth_by_grid(), 0, 25, 12, 10))
    dash = dash.with_panel(at(rain_by_district(), 12, 25, 12, 10))
    return dash
