"""The queries a dashboard sends, with template variables substituted as Grafana does.

Used by ``gridwatch dashboards preview`` and by the tests that run every panel's query
against a real InfluxDB. Substitution follows Grafana's InfluxDB datasource: a
regex-interpolated multi-value variable becomes ``(a|b)`` (values regex-escaped), "All"
becomes the variable's ``allValue`` (``.*``), ``$timeFilter`` becomes
``time >= now() - 6h``, ``$__interval`` an interval such as ``1m``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALL = "$__all"
_VAR_RE = re.compile(r"\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]")
_BUILTINS = {"timeFilter", "__interval", "__interval_ms", "__all", "col", "measurement"}


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One query of one panel (or an annotation or a variable)."""

    dashboard: str
    panel_id: int | None
    title: str
    ref_id: str
    query: str
    result_format: str = "time_series"
    alias: str | None = None
    source: str = "panel"  # panel | annotation | variable


def panel_queries(stem: str, model: Mapping[str, Any]) -> Iterator[PanelQuery]:
    """Every InfluxQL query in a dashboard: panel targets, annotations and variables."""
    for panel in model.get("panels", []):
        for target in panel.get("targets", []):
            yield PanelQuery(
                stem,
                panel.get("id"),
                panel.get("title", ""),
                target.get("refId", ""),
                target["query"],
                target.get("resultFormat", "time_series"),
                target.get("alias"),
            )
    for anno in model.get("annotations", {}).get("list", []):
        if "query" in anno:
            yield PanelQuery(
                stem, None, anno["name"], "Anno", anno["query"], "table", source="annotation"
            )
    for var in model.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            yield PanelQuery(
                stem, None, var["name"], var["name"], var["query"], "table", source="variable"
            )


def variables(model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in model.get("templating", {}).get("list", [])}


def used_variables(text: str) -> set[str]:
    """Names of the template variables a query refers to (built-ins and alias patterns
    such as ``$tag_device`` excluded)."""
    names = {a or b or c for a, b, c in _VAR_RE.findall(text)}
    return {n for n in names if n not in _BUILTINS and not n.startswith("tag_")}


def format_value(value: str | Sequence[str], var: Mapping[str, Any]) -> str:
    """A variable's value as Grafana's InfluxDB datasource interpolates it in a regex."""
    values = [value] if isinstance(value, str) else list(value)
    if values == [ALL] or ALL in values:
        return str(var.get("allValue") or ".*")
    escaped = [re.sub(r"([\\/^$.|?*+()\[\]{}-])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(
    query: str,
    model: Mapping[str, Any],
    values: Mapping[str, str | Sequence[str]] | None = None,
    *,
    time_from: str = "now() - 6h",
    interval: str = "1m",
) -> str:
    """``query`` with every variable replaced (unset variables take "All")."""
    defs = variables(model)
    chosen = dict(values or {})

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name == "timeFilter":
            return f"time >= {time_from}"
        if name == "__interval":
            return interval
        if name in defs:
            return format_value(chosen.get(name, ALL), defs[name])
        return match.group(0)

    return _VAR_RE.sub(repl, query)


def time_from_of(model: Mapping[str, Any]) -> str:
    """Grafana's ``now-6h`` as InfluxQL's ``now() - 6h``."""
    raw = str(model.get("time", {}).get("from", "now-6h"))
    match = re.fullmatch(r"now-(\d+[smhdw])", raw)
    return f"now() - {match.group(1)}" if match else "now() - 6h"


# Grafana's rounding of range / max data points to a readable interval (its
# kbn.roundInterval table): (upper bound in seconds, interval).
_ROUND = (
    (7.5, "5s"),
    (12.5, "10s"),
    (17.5, "15s"),
    (25.0, "20s"),
    (45.0, "30s"),
    (90.0, "1m"),
    (210.0, "2m"),
    (450.0, "5m"),
    (750.0, "10m"),
    (1050.0, "15m"),
    (1500.0, "20m"),
    (2700.0, "30m"),
    (5400.0, "1h"),
)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def grafana_interval(time_from: str, max_points: int = 1000) -> str:
    """``$__interval`` as Grafana computes it for ``time >= {time_from}`` on a panel
    about ``max_points`` pixels wide: ``now() - 3h`` → ``10s``, ``now() - 24h`` → ``1m``."""
    match = re.fullmatch(r"now\(\) - (\d+)([smhdw])", time_from)
    span_s = int(match.group(1)) * _UNIT_S[match.group(2)] if match else 6 * 3600
    per_point = span_s / max_points
    for bound, interval in _ROUND:
        if per_point < bound:
            return interval
    return "2h"
