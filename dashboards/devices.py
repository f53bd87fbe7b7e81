"""设备健康 Devices: reporting vs silent vs dead devices, battery, quality-flag rates."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

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
from dashboards.panels import at, bars, grid_table, kpi, qc_colored, ts

UID = "gridwatch-devices"
READINGS = '"water", "rain", "bike", "camera", "status"'
SENSORS = '"water", "rain", "bike", "camera"'
SILENT_AFTER = "10m"
DEAD_AFTER = "24h"


def _seen_within(window: str) -> InfluxQL:
    return InfluxQL(
        'SELECT count("qc") AS "devices" FROM '
        f'(SELECT last("qc") AS "qc" FROM {READINGS} WHERE {AREA} AND time > now() - {window} '
        'GROUP BY "device")'
    ).alias("$measurement")


def reporting() -> stat.Panel:
    return kpi(
        "在线设备",
        f"Devices that reported within the last {SILENT_AFTER}, per reading kind.",
        _seen_within(SILENT_AFTER),
        thresholds=thresholds((None, "blue")),
    )


def seen_today() -> stat.Panel:
    return kpi(
        "24小时内上报",
        f"Devices that reported within the last {DEAD_AFTER}, per kind. Those not reporting within "
        f"{SILENT_AFTER} are silent (静默); registered devices absent here are dead (失联).",
        _seen_within(DEAD_AFTER),
        thresholds=thresholds((None, "blue")),
    )


def last_seen() -> table.Panel:
    return grid_table(
        "设备最后上报",
        f"Last report of every device in 7 days, oldest first: older than {SILENT_AFTER} = "
        f"silent (静默), older than {DEAD_AFTER} = dead (失联).",
        [
            InfluxQL(
                f'SELECT last("qc") AS "qc" FROM {READINGS} WHERE {AREA} '
                'AND time > now() - 7d GROUP BY "device", "grid"'
            )
        ],
    )


def device_faults() -> bargauge.Panel:
    return bars(
        "设备故障告警",
        "Device-fault alerts (category device_fault: silence, stuck values, low battery) in "
        "the time range, by severity.",
        [
            InfluxQL(
                'SELECT count("probability") FROM "alert" '
                f'WHERE "category" = \'device_fault\' AND {AREA} AND {TIME} GROUP BY "severity"'
            ).alias("$tag_severity")
        ],
        thresholds=thresholds((None, "green"), (1, "orange")),
    )


def battery() -> timeseries.Panel:
    return ts(
        "电池电压",
        "Battery voltage of water-level sensors and status reports (lowest per interval).",
        [
            InfluxQL(
                f'SELECT min("battery_v") FROM "water", "status" WHERE {SITE} AND {AREA} '
                f'AND {TIME} {INTERVAL}, "device" fill(none)'
            ).alias("$tag_device")
        ],
        unit="volt",
        thresholds=thresholds((None, "red"), (3.3, "orange"), (3.6, "green")),
    )


def qc_rates() -> timeseries.Panel:
    """Readings per QARTOD flag and kind, stacked to 100 % per kind's series."""
    flags = ((1, "通过"), (3, "可疑"), (4, "失败"), (9, "缺失"))
    return qc_colored(
        ts(
            "质量标志比例",
            "Quality-flag rates: readings per flag (1 pass, 3 suspect, 4 fail, 9 missing) and "
            "per measurement, stacked to 100 %.",
            [
                InfluxQL(
                    f'SELECT count("qc") AS "{label}" FROM {SENSORS} WHERE "qc" = {flag} '
                    f"AND {SITE} AND {AREA} AND {TIME} {INTERVAL} fill(none)"
                ).alias("$measurement $col")
                for flag, label in flags
            ],
            bars=True,
            stack=cm.StackingMode.PERCENT,
        )
    )


def dashboard() -> db.Dashboard:
    dash = frame(
        UID,
        "设备健康",
        "Device health: silent vs dead devices, battery, quality-flag rates.",
        variables=[
            district_variable(),
            grid_variable(),
            site_variable(["water", "rain", "bike", "camera", "status"]),
        ],
        time_from="now-24h",
    )
    return (
        dash.with_panel(at(reporting(), 0, 0, 4, 5))
        .with_panel(at(seen_today(), 4, 0, 4, 5))
        .with_panel(at(device_faults(), 8, 0, 16, 5))
        .with_panel(at(last_seen(), 0, 5, 12, 12))
        .with_panel(at(battery(), 12, 5, 12, 12))
        .with_panel(at(qc_rates(), 0, 17, 24, 9))
    )
