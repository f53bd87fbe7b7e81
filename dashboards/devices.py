"""设备健康 Devices: reporting devices, silent vs dead (device-fault tickets), battery
(readings and status assessments), quality-flag rates."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common as cm

from dashboards.common import (
    AREA,
    GRID,
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
from dashboards.panels import at, color_by_regex, grid_table, kpi, qc_colored, ts

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


FAULTS = "\"category\" = 'device_fault'"


def _fault_tickets(health: str) -> InfluxQL:
    """Device-fault tickets whose alert said ``<device> <health> (…)`` (the silence
    watcher's why, carried as the ticket event's reason)."""
    return InfluxQL(
        f'SELECT count(distinct("ticket_id")) AS "{health}" FROM "ticket" '
        f'WHERE {FAULTS} AND "reason" =~ / {health} \\(/ AND {GRID} AND {TIME}'
    )


def silent_and_dead() -> stat.Panel:
    panel = kpi(
        "静默与失联设备",
        "Silent vs dead devices: device-fault tickets raised or updated in the time range "
        "because a sensor went quiet. Silent (静默): late for five report intervals, "
        "battery fine - a radio dropout or a gateway. Dead (失联): gone for 6 h or its "
        "battery ran down - a site visit. Read from the ticket events' reason (the "
        "alert's why).",
        _fault_tickets("silent").alias("静默 silent"),
        thresholds=thresholds((None, "green"), (1, "orange")),
    )
    return (
        panel.with_target(_fault_tickets("dead").alias("失联 dead").ref_id("B"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .with_override(*color_by_regex("失联.*", {"thresholds": _dead_thresholds()}))
    )


def _dead_thresholds() -> object:
    return thresholds((None, "green"), (1, "red")).build()


def device_faults() -> table.Panel:
    return grid_table(
        "设备故障工单",
        "Device-fault ticket events (silent or dead sensors, low battery, faulty readings) "
        "in the time range, newest first: grid, severity, event, state and the reason.",
        [
            InfluxQL(
                'SELECT "grid", "severity", "event", "state", "ticket_id", "reason" '
                f'FROM "ticket" WHERE {FAULTS} AND {GRID} AND {TIME} '
                "ORDER BY time DESC LIMIT 50"
            )
        ],
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


def battery_outlook() -> table.Panel:
    return grid_table(
        "电池续航",
        "Battery outlook of the status reports (status assessments): last voltage, trend "
        "(V/h), hours left before empty, reboots and firmware changes seen, QC (3 = "
        "battery low), per device.",
        [
            InfluxQL(
                'SELECT last("value") AS "battery_v", last("d_battery_trend_v_h") AS "v_per_h", '
                'last("d_hours_left") AS "hours_left", last("d_reboots") AS "reboots", '
                'last("d_firmware_changes") AS "firmware_changes", last("qc") AS "qc" '
                f'FROM "assessment" WHERE "kind" = \'status\' AND {SITE} AND {AREA} '
                f'AND {TIME} GROUP BY "device", "grid"'
            )
        ],
        sort_by="qc",
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
        .with_panel(at(silent_and_dead(), 8, 0, 16, 5))
        .with_panel(at(last_seen(), 0, 5, 8, 12))
        .with_panel(at(device_faults(), 8, 5, 16, 12))
        .with_panel(at(battery(), 0, 17, 12, 10))
        .with_panel(at(battery_outlook(), 12, 17, 12, 10))
        .with_panel(at(qc_rates(), 0, 27, 24, 9))
    )
