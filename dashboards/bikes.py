"""共享单车停放 Bike parking: occupancy vs capacity per metro exit, overflow forecast,
vehicles per operator."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db

from dashboards.common import (
    AREA,
    INTERVAL,
    SITE,
    TIME,
    district_variable,
    frame,
    grid_variable,
    site_variable,
    thresholds,
)
from dashboards.influxql import InfluxQL
from dashboards.panels import at, bars, grid_table, ts

UID = "gridwatch-bikes"
BIKE = "\"kind\" = 'bike'"


def occupancy_now() -> bargauge.Panel:
    return bars(
        "当前占用率",
        "Latest occupancy (bikes / capacity) per parking area at a metro exit; red above 100 %.",
        [
            InfluxQL(
                f'SELECT last("occupancy") FROM "bike" WHERE {SITE} AND {AREA} AND {TIME} '
                'GROUP BY "device"'
            ).alias("$tag_device")
        ],
        unit="percentunit",
        thresholds=thresholds((None, "green"), (0.8, "orange"), (1.0, "red")),
    )


def bikes_vs_capacity() -> timeseries.Panel:
    return ts(
        "停放量与容量",
        "Parked bikes against the capacity of each site (metro exit).",
        [
            InfluxQL(
                'SELECT mean("bikes") AS "bikes", mean("capacity") AS "capacity" FROM "bike" '
                f'WHERE {SITE} AND {AREA} AND {TIME} {INTERVAL}, "device" fill(none)'
            ).alias("$tag_device $col")
        ],
    )


def overflow_forecast() -> timeseries.Panel:
    return ts(
        "溢出预测",
        "Overflow forecast of the bike assessments: assessed value, +30 min median and q90 "
        "(fields value, f30_q50, f30_q90) and the overflow risk (0-1), per site.",
        [
            InfluxQL(
                'SELECT mean("value") AS "value", mean("f30_q50") AS "+30 q50", '
                'mean("f30_q90") AS "+30 q90" '
                f'FROM "assessment" WHERE {BIKE} AND {SITE} AND {AREA} AND {TIME} '
                f'{INTERVAL}, "device" fill(none)'
            ).alias("$tag_device $col"),
        ],
    )


def overflow_risk() -> timeseries.Panel:
    return ts(
        "溢出风险",
        "Overflow risk (0-1) of each bike site (assessment field risk).",
        [
            InfluxQL(
                f'SELECT max("risk") FROM "assessment" WHERE {BIKE} AND {SITE} AND {AREA} '
                f'AND {TIME} {INTERVAL}, "device" fill(none)'
            ).alias("$tag_device")
        ],
        unit="percentunit",
    )


def per_operator() -> table.Panel:
    return grid_table(
        "各运营商车辆",
        "Bikes per operator at each site (latest): fields op_<operator> of the bike "
        "measurement (from the reading's by_operator counts).",
        [
            InfluxQL(
                f'SELECT last(/^op_/) FROM "bike" WHERE {SITE} AND {AREA} AND {TIME} '
                'GROUP BY "device"'
            )
        ],
    )


def dashboard() -> db.Dashboard:
    dash = frame(
        UID,
        "共享单车停放",
        "Bike parking at metro exits: occupancy vs capacity, overflow forecast, operators.",
        variables=[district_variable(), grid_variable(), site_variable(["bike"])],
    )
    return (
        dash.with_panel(at(occupancy_now(), 0, 0, 8, 10))
        .with_panel(at(bikes_vs_capacity(), 8, 0, 16, 10))
        .with_panel(at(overflow_forecast(), 0, 10, 12, 10))
        .with_panel(at(overflow_risk(), 12, 10, 12, 10))
        .with_panel(at(per_operator(), 0, 20, 24, 8))
    )
