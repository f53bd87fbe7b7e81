"""积水监测 Waterlogging: depth per site with forecast bands, thresholds, rain, QC."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

from dashboards.common import (
    AREA,
    INTERVAL,
    QC_GOOD,
    SITE,
    TIME,
    depth_thresholds,
    district_variable,
    frame,
    grid_variable,
    site_variable,
)
from dashboards.influxql import InfluxQL
from dashboards.panels import at, bars, override, qc_colored, ts

UID = "gridwatch-waterlogging"
WATER = "\"kind\" = 'water'"


def current_depth() -> bargauge.Panel:
    return bars(
        "当前积水深度",
        "Latest standing-water depth per site (cm) in the time range, from readings that "
        "passed QC; orange from 7.6 cm (pre-alert), red from 15 cm (impassable).",
        [
            InfluxQL(
                f'SELECT last("level_cm") FROM "water" WHERE {QC_GOOD} AND {SITE} AND {AREA} '
                f"AND {TIME} "
                'GROUP BY "device"'
            ).alias("$tag_device")
        ],
        unit="lengthcm",
        thresholds=depth_thresholds(),
    )


def exceedance() -> timeseries.Panel:
    return ts(
        "超阈概率",
        "Forecast probability that depth exceeds 7.6 cm / 15 cm at +15, +30 and +60 min "
        "(assessment fields fH_p7_6, fH_p15; highest over the chosen sites).",
        [
            InfluxQL(
                'SELECT max("f15_p7_6") AS "P>7.6 +15", max("f30_p7_6") AS "P>7.6 +30", '
                'max("f15_p15") AS "P>15 +15", max("f30_p15") AS "P>15 +30", '
                'max("f60_p15") AS "P>15 +60" '
                f'FROM "assessment" WHERE {WATER} AND {SITE} AND {AREA} AND {TIME} '
                f"{INTERVAL} fill(none)"
            ).alias("$col")
        ],
        unit="percentunit",
    )


def depth_with_forecast() -> timeseries.Panel:
    """Repeated per site: observed depth, the +15/+30/+60 median forecasts and the
    +30 q10-q90 band, plotted at the time the forecast was issued."""
    panel = ts(
        "积水深度与预报 · $site",
        "Observed depth (实测) and the forecast medians +15/+30/+60 min with the +30 min "
        "q10-q90 band, drawn at issue time; dashed lines at 7.6 cm and 15 cm. One panel per "
        "selected site; tickets raised appear as annotations.",
        [
            InfluxQL(
                f'SELECT mean("level_cm") AS "实测" FROM "water" WHERE {SITE} AND {AREA} '
                f"AND {TIME} {INTERVAL} fill(none)"
            ).alias("$col"),
            InfluxQL(
                'SELECT mean("f15_q50") AS "+15", mean("f30_q50") AS "+30", '
                'mean("f60_q50") AS "+60", mean("f30_q10") AS "+30 q10", '
                'mean("f30_q90") AS "+30 q90" '
                f'FROM "assessment" WHERE {WATER} AND {SITE} AND {AREA} AND {TIME} '
                f"{INTERVAL} fill(none)"
            ).alias("$col"),
        ],
        unit="lengthcm",
        thresholds=depth_thresholds(),
    )
    band = {
        "custom.lineWidth": 0,
        "custom.fillOpacity": 0,
        "custom.hideFrom": {"legend": True, "tooltip": False, "viz": False},
    }
    return (
        panel.repeat("site")
        .repeat_direction("h")
        .with_override(*override("+30 q10", band))
        .with_override(
            *override(
                "+30 q90", {**band, "custom.fillBelowTo": "+30 q10", "custom.fillOpacity": 20}
            )
        )
        .with_override(
            *override(
                "实测", {"custom.lineWidth": 3, "color": {"mode": "fixed", "fixedColor": "blue"}}
            )
        )
    )


def rain_intensity() -> timeseries.Panel:
    return ts(
        "雨强",
        "Rain intensity per gauge (mm/h), readings that passed QC.",
        [
            InfluxQL(
                f'SELECT mean("intensity_mm_h") FROM "rain" WHERE {QC_GOOD} AND {AREA} AND {TIME} '
                f'{INTERVAL}, "device" fill(none)'
            ).alias("$tag_device")
        ],
        unit="mm/h",
        bars=True,
    )


def qc_flags() -> timeseries.Panel:
    """Share of water readings per QARTOD flag (stacked to 100 %). Ingest's gross-range
    test evaluates every water reading (ingest/quality.py), so 2 (not evaluated) and 9
    (missing) never occur for water."""
    flags = ((1, "通过 pass"), (3, "可疑 suspect"), (4, "失败 fail"))
    return qc_colored(
        ts(
            "数据质量标志",
            "Quality flags of the water readings (QARTOD: 1 pass, 3 suspect, 4 fail), as a "
            "share of readings per interval.",
            [
                InfluxQL(
                    f'SELECT count("qc") AS "{label}" FROM "water" WHERE "qc" = {flag} AND {SITE} '
                    f"AND {AREA} AND {TIME} {INTERVAL} fill(none)"
                ).alias("$col")
                for flag, label in flags
            ],
            unit="short",
            bars=True,
            stack=cm.StackingMode.PERCENT,
        )
    )


def anomaly() -> timeseries.Panel:
    return ts(
        "异常分数",
        "Anomaly score (0-1) of each site's water readings (assessment field anomaly).",
        [
            InfluxQL(
                f'SELECT max("anomaly") FROM "assessment" WHERE {WATER} AND {SITE} AND {AREA} '
                f'AND {TIME} {INTERVAL}, "device" fill(none)'
            ).alias("$tag_device")
        ],
        unit="percentunit",
    )


def dashboard() -> db.Dashboard:
    dash = frame(
        UID,
        "积水监测",
        "Waterlogging: depth per site, +15/+30/+60 min forecasts, thresholds 7.6/15 cm, rain, QC.",
        variables=[district_variable(), grid_variable(), site_variable(["water"])],
    )
    return (
        dash.with_panel(at(current_depth(), 0, 0, 8, 10))
        .with_panel(at(exceedance(), 8, 0, 16, 10))
        .with_panel(at(depth_with_forecast(), 0, 10, 12, 10))
        .with_panel(at(rain_intensity(), 0, 20, 12, 8))
        .with_panel(at(qc_flags(), 12, 20, 12, 8))
        .with_panel(at(anomaly(), 0, 28, 24, 8))
    )
