"""Panel shapes on top of the SDK builders: one call per kind of panel, so that each
dashboard module has one short function per panel that says only what it shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dbmodel

from dashboards.influxql import InfluxQL, datasource

P = TypeVar("P", bound=Any)


def _targets(queries: Sequence[InfluxQL]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    """Targets with ref ids A, B, C… in order."""
    out: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for i, q in enumerate(queries):
        out.append(q.ref_id(chr(ord("A") + i)))
    return out


def ts(
    title: str,
    description: str,
    queries: Sequence[InfluxQL],
    *,
    unit: str = "short",
    bars: bool = False,
    stack: cm.StackingMode | None = None,
    thresholds: db.ThresholdsConfig | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(_targets(queries))
        .unit(unit)
        .line_width(2)
        .fill_opacity(10)
        .span_nulls(True)
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.RIGHT)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI))
    )
    if bars:
        panel = panel.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    if stack is not None:
        panel = panel.stacking(common.StackingConfig().mode(stack))
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.DASHED)
        )
    return panel


def kpi(
    title: str,
    description: str,
    query: InfluxQL,
    *,
    unit: str = "short",
    thresholds: db.ThresholdsConfig | None = None,
    decimals: float = 0,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(_targets([query]))
        .unit(unit)
        .decimals(decimals)
        .no_value("0")
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .text_mode(cm.BigValueTextMode.VALUE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    return panel


def bars(
    title: str,
    description: str,
    queries: Sequence[InfluxQL],
    *,
    unit: str = "short",
    thresholds: db.ThresholdsConfig | None = None,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(_targets(queries))
        .unit(unit)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    return panel


def grid_table(
    title: str,
    description: str,
    queries: Sequence[InfluxQL],
    *,
    sort_by: str | None = None,
) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(_targets([q.table() for q in queries]))
        .show_header(True)
    )
    if sort_by is not None:
        panel = panel.sort_by([common.TableSortByFieldState().display_name(sort_by).desc(True)])
    return panel


def at(panel: P, x: int, y: int, w: int, h: int) -> P:
    """Place a panel on the 24-column grid (positions are explicit, never flowed)."""
    panel.grid_pos(dbmodel.GridPos(h=h, w=w, x=x, y=y))
    return panel


def override(
    name: str, props: dict[str, object]
) -> tuple[dbmodel.MatcherConfig, list[dbmodel.DynamicConfigValue]]:
    """A field override by exact name: ``override("q90", {"custom.fillBelowTo": "q10"})``."""
    values = [dbmodel.DynamicConfigValue(id_val=k, value=v) for k, v in props.items()]
    return dbmodel.MatcherConfig(id_val="byName", options=name), values


def color_by_regex(
    pattern: str, props: dict[str, object]
) -> tuple[dbmodel.MatcherConfig, list[dbmodel.DynamicConfigValue]]:
    """A field override for every series whose name matches the regex ``pattern``."""
    values = [dbmodel.DynamicConfigValue(id_val=k, value=v) for k, v in props.items()]
    return dbmodel.MatcherConfig(id_val="byRegexp", options=pattern), values


def color(
    pattern: str, fixed: str
) -> tuple[dbmodel.MatcherConfig, list[dbmodel.DynamicConfigValue]]:
    """Fixed colour for every series whose name matches the regex ``pattern``."""
    return dbmodel.MatcherConfig(id_val="byRegexp", options=pattern), [
        dbmodel.DynamicConfigValue(id_val="color", value={"fixedColor": fixed, "mode": "fixed"})
    ]


QC_COLORS = (
    ("通过", "green"),
    ("未评估", "blue"),
    ("可疑", "orange"),
    ("失败", "red"),
    ("缺失", "purple"),
)


def qc_colored(panel: timeseries.Panel) -> timeseries.Panel:
    """Series named after a QC flag get the flag's colour (as on the wall's map)."""
    for label, fixed in QC_COLORS:
        panel = panel.with_override(*color(f".*{label}.*", fixed))
    return panel
