"""数据管道 Pipeline: ingest rate, dead letters by reason, consumer lag, sink latency,
sink retries and spool, tickets raised per hour (measurement ``pipeline``, tags
stage/instance/reason)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common as cm

from dashboards.common import (
    GRID,
    INTERVAL,
    TIME,
    district_variable,
    frame,
    grid_variable,
)
from dashboards.influxql import InfluxQL
from dashboards.panels import at, ts

UID = "gridwatch-pipeline"
INGEST = "\"stage\" = 'ingest'"
STREAMS = "\"stage\" = 'streams'"


def ingest_rate() -> timeseries.Panel:
    return ts(
        "接入速率",
        "Ingest rate per bridge instance: MQTT messages received and readings forwarded to "
        "Kafka per second (derivative of the bridge counters).",
        [
            InfluxQL(
                'SELECT non_negative_derivative(max("received"), 1s) AS "received", '
                'non_negative_derivative(max("forwarded"), 1s) AS "forwarded" '
                f'FROM "pipeline" WHERE {INGEST} AND {TIME} {INTERVAL}, "instance" fill(none)'
            ).alias("$tag_instance $col")
        ],
        unit="reqps",
    )


def stored_rate() -> timeseries.Panel:
    return ts(
        "入库速率",
        "Readings written to InfluxDB per second by each stream worker (stage streams, "
        "counter readings).",
        [
            InfluxQL(
                'SELECT non_negative_derivative(max("readings"), 1s) AS "readings" '
                f'FROM "pipeline" WHERE {STREAMS} AND {TIME} {INTERVAL}, "instance" fill(none)'
            ).alias("$tag_instance $col")
        ],
        unit="reqps",
    )


def dead_letters() -> timeseries.Panel:
    return ts(
        "死信（按原因）",
        "Dead letters per interval by reason code (malformed, schema, unknown_device...), "
        "summed over instances.",
        [
            InfluxQL(
                'SELECT sum("d") AS "dead_letters" FROM ('
                'SELECT non_negative_difference(max("dead_lettered")) AS "d" FROM "pipeline" '
                f'WHERE "reason" =~ /.+/ AND {TIME} {INTERVAL}, "reason", "instance") '
                f'WHERE {TIME} {INTERVAL}, "reason" fill(none)'
            ).alias("$tag_reason")
        ],
        bars=True,
        stack=cm.StackingMode.NORMAL,
    )


def consumer_lag() -> timeseries.Panel:
    return ts(
        "消费滞后",
        "Kafka consumer lag (records behind the log end) per stream worker (field lag).",
        [
            InfluxQL(
                f'SELECT max("lag") FROM "pipeline" WHERE {STREAMS} AND {TIME} '
                f'{INTERVAL}, "instance" fill(none)'
            ).alias("$tag_instance")
        ],
    )


def sink_latency() -> timeseries.Panel:
    return ts(
        "写入延迟",
        "Latency percentiles: InfluxDB sink writes of the stream workers (sink_ms) and the "
        "bridge's Kafka produce and MQTT ack (produce_ms, ack_ms).",
        [
            InfluxQL(
                'SELECT max("sink_ms_p50") AS "sink p50", max("sink_ms_p99") AS "sink p99" '
                f'FROM "pipeline" WHERE {STREAMS} AND {TIME} {INTERVAL} fill(none)'
            ).alias("$col"),
            InfluxQL(
                'SELECT max("produce_ms_p99") AS "produce p99", max("ack_ms_p99") AS "ack p99" '
                f'FROM "pipeline" WHERE {INGEST} AND {TIME} {INTERVAL} fill(none)'
            ).alias("$col"),
        ],
        unit="ms",
    )


def sink_health() -> timeseries.Panel:
    return ts(
        "写入重试与缓存",
        "How the stream workers' InfluxDB sink copes, per interval and worker: write "
        "retries, points InfluxDB rejected (dead-lettered), points spooled to disk while "
        "InfluxDB was down and drained from the spool since (counters sink_retries, "
        "sink_rejected, spooled, spool_drained). All zero while InfluxDB keeps up.",
        [
            InfluxQL(
                'SELECT non_negative_difference(max("sink_retries")) AS "retries", '
                'non_negative_difference(max("sink_rejected")) AS "rejected", '
                'non_negative_difference(max("spooled")) AS "spooled", '
                'non_negative_difference(max("spool_drained")) AS "drained" '
                f'FROM "pipeline" WHERE {STREAMS} AND {TIME} {INTERVAL}, "instance" fill(none)'
            ).alias("$tag_instance $col")
        ],
        bars=True,
    )


def tickets_per_hour() -> timeseries.Panel:
    return ts(
        "每小时新建工单",
        "Tickets raised per hour by category (ticket events with event = create).",
        [
            InfluxQL(
                'SELECT count("ticket_id") FROM "ticket" '
                f"WHERE \"event\" = 'create' AND {GRID} AND {TIME} "
                'GROUP BY time(1h), "category" fill(none)'
            ).alias("$tag_category")
        ],
        bars=True,
        stack=cm.StackingMode.NORMAL,
    )


def dashboard() -> db.Dashboard:
    dash = frame(
        UID,
        "数据管道",
        "Pipeline health: ingest, dead letters, consumer lag, sink latency, sink retries "
        "and spool, tickets per hour.",
        variables=[district_variable(), grid_variable()],
    )
    return (
        dash.with_panel(at(ingest_rate(), 0, 0, 12, 8))
        .with_panel(at(stored_rate(), 12, 0, 12, 8))
        .with_panel(at(dead_letters(), 0, 8, 12, 8))
        .with_panel(at(consumer_lag(), 12, 8, 12, 8))
        .with_panel(at(sink_latency(), 0, 16, 12, 8))
        .with_panel(at(sink_health(), 12, 16, 12, 8))
        .with_panel(at(tickets_per_hour(), 0, 24, 24, 8))
    )
