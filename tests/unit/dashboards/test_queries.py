"""Template-variable substitution as Grafana's InfluxDB datasource does it, and the
InfluxQL target shape of our SDK extension."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dashboards.influxql import InfluxQL
from dashboards.queries import format_value, grafana_interval, substitute, time_from_of

MODEL = {
    "time": {"from": "now-3h", "to": "now"},
    "templating": {
        "list": [
            {"name": "grid", "type": "query", "query": "", "allValue": ".*"},
            {"name": "site", "type": "query", "query": ""},
        ]
    },
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$__all", ".*"),
        (["$__all"], ".*"),
        ("G01", "G01"),
        (["G01", "G02"], "(G01|G02)"),
        (["a.b", "c/d"], r"(a\.b|c\/d)"),
        ("wl-001", r"wl\-001"),
    ],
)
def test_format_value_as_a_regex(value: str | list[str], expected: str) -> None:
    assert format_value(value, {"allValue": ".*"}) == expected


def test_substitute_every_variable_and_builtin() -> None:
    q = (
        'SELECT max("x") FROM "water" WHERE "grid" =~ /^$grid$/ AND $timeFilter '
        "GROUP BY time($__interval)"
    )
    assert substitute(q, MODEL, {"grid": ["G01", "G02"]}, time_from=time_from_of(MODEL)) == (
        'SELECT max("x") FROM "water" WHERE "grid" =~ /^(G01|G02)$/ AND time >= now() - 3h '
        "GROUP BY time(1m)"
    )
    assert "/^.*$/" in substitute(q, MODEL)  # unset → All


def test_unknown_variables_are_left_for_the_tests_to_catch() -> None:
    assert "$nosuch" in substitute("WHERE x =~ /^$nosuch$/", MODEL)


def test_influxql_target_json() -> None:
    target = InfluxQL('SELECT 1 FROM "water"').ref_id("B").table().alias("$tag_device").build()
    assert target.to_json() == {
        "alias": "$tag_device",
        "datasource": {"type": "influxdb", "uid": "gridwatch-influx"},
        "query": 'SELECT 1 FROM "water"',
        "rawQuery": True,
        "refId": "B",
        "resultFormat": "table",
    }


def test_cli_check_passes_on_the_committed_tree() -> None:
    from gridwatch import cli

    cli._register()
    result = CliRunner().invoke(cli.app, ["dashboards", "check"])
    assert result.exit_code == 0, result.output
    assert "match the code" in result.output


@pytest.mark.parametrize(
    ("time_from", "interval"),
    [
        ("now() - 1h", "5s"),
        ("now() - 3h", "10s"),
        ("now() - 6h", "20s"),
        ("now() - 24h", "1m"),
        ("now() - 7d", "10m"),
        ("now() - 90d", "2h"),
    ],
)
def test_grafana_interval_rounds_range_per_point(time_from: str, interval: str) -> None:
    assert grafana_interval(time_from) == interval
