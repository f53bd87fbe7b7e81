"""视频分析 Cameras: street-vendor, garbage, road-occupation and crowding counts against
a rolling baseline, the camera job's probability per category, water cover, camera
status."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, timeseries

from dashboards.common import (
    AREA,
    INTERVAL,
    SITE,
    TIME,
    district_variable,
    frame,
    grid_variable,
    risk_thresholds,
    site_variable,
)
from dashboards.influxql import InfluxQL
from dashboards.panels import at, grid_table, override, ts

UID = "gridwatch-cameras"
BASELINE_WINDOW = 12  # intervals in the rolling-mean baseline


def _counts(title: str, field: str, english: str) -> timeseries.Panel:
    where = f"WHERE {SITE} AND {AREA} AND {TIME} {INTERVAL} fill(none)"
    return ts(
        title,
        f"{english}: mean count per camera (field {field}) against its baseline, the rolling "
        f"mean of the last {BASELINE_WINDOW} intervals.",
        [
            InfluxQL(f'SELECT mean("{field}") AS "实测" FROM "camera" {where}').alias("$col"),
            InfluxQL(
                f'SELECT moving_average(mean("{field}"), {BASELINE_WINDOW}) AS "基线" '
                f'FROM "camera" {where}'
            ).alias("$col"),
        ],
    ).with_override(*override("基线", {"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}}))


def vendors() -> timeseries.Panel:
    return _counts("流动摊贩", "vendor", "Street vendors")


def garbage() -> timeseries.Panel:
    return _counts("暴露垃圾", "garbage", "Exposed garbage")


def road_occupation() -> timeseries.Panel:
    return _counts("占道经营", "road_occupation", "Road occupation")


def crowding() -> timeseries.Panel:
    return _counts("人群聚集", "person", "Crowding (persons in view)")


def category_probability() -> timeseries.Panel:
    return ts(
        "事件概率",
        "Probability (0-1) the camera job gives each street-order category (fields "
        "d_p_street_vendor, d_p_exposed_garbage, d_p_road_occupation, d_p_crowding of the "
        "camera assessments): the highest of the chosen cameras per interval; alerts "
        "follow from these.",
        [
            InfluxQL(
                'SELECT max("d_p_street_vendor") AS "摊贩 vendor", '
                'max("d_p_exposed_garbage") AS "垃圾 garbage", '
                'max("d_p_road_occupation") AS "占道 road occupation", '
                'max("d_p_crowding") AS "聚集 crowding" '
                f'FROM "assessment" WHERE "kind" = \'camera\' AND {SITE} AND {AREA} '
                f"AND {TIME} {INTERVAL} fill(none)"
            ).alias("$col")
        ],
        unit="percentunit",
        thresholds=risk_thresholds(),
    )


def water_cover() -> timeseries.Panel:
    return ts(
        "路面积水覆盖",
        "Share of the road surface covered by water as seen by each camera (field water_cover).",
        [
            InfluxQL(
                f'SELECT max("water_cover") FROM "camera" WHERE {SITE} AND {AREA} AND {TIME} '
                f'{INTERVAL}, "device" fill(none)'
            ).alias("$tag_device")
        ],
        unit="percentunit",
    )


def camera_status() -> table.Panel:
    return grid_table(
        "摄像头状态",
        "Latest status of each camera (ok, degraded, obstructed, offline) and its counts.",
        [
            InfluxQL(
                'SELECT last("status") AS "status", last("person") AS "person", '
                'last("vendor") AS "vendor", last("garbage") AS "garbage" '
                f'FROM "camera" WHERE {SITE} AND {AREA} AND {TIME} GROUP BY "device", "grid"'
            )
        ],
    )


def dashboard() -> db.Dashboard:
    dash = frame(
        UID,
        "视频分析",
        "Camera analytics: vendor, garbage, road-occupation and crowding counts vs baselines.",
        variables=[district_variable(), grid_variable(), site_variable(["camera"])],
    )
    return (
        dash.with_panel(at(vendors(), 0, 0, 12, 8))
        .with_panel(at(garbage(), 12, 0, 12, 8))
        .with_panel(at(road_occupation(), 0, 8, 12, 8))
        .with_panel(at(crowding(), 12, 8, 12, 8))
        .with_panel(at(category_probability(), 0, 16, 24, 8))
        .with_panel(at(water_cover(), 0, 24, 12, 8))
        .with_panel(at(camera_status(), 12, 24, 12, 8))
    )
