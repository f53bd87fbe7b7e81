"""What each dashboard will show, without Grafana: every panel's queries run against the
configured InfluxDB and drawn with matplotlib, one PNG per dashboard.

Time series become lines (one per series and column), single values and tables become
horizontal bars (numbers) or a short text listing. Titles stay Chinese when a CJK font is
installed (fonts-noto-cjk or fonts-wqy-microhei); otherwise the English name from the
panel description is drawn, so no glyph is ever missing.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from dashboards.queries import grafana_interval, substitute, time_from_of
from gridwatch.errors import SinkError
from gridwatch.influx import query
from gridwatch.settings import InfluxSettings

CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Source Han Sans SC",
    "SimHei",
    "Microsoft YaHei",
)
WORDS = {
    "实测": "observed",
    "基线": "baseline",
    "通过": "pass",
    "可疑": "suspect",
    "失败": "fail",
    "缺失": "missing",
    "未评估": "not evaluated",
    "预报": "forecast",
}
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]+")


@dataclass
class PanelData:
    title: str
    english: str
    series: list[dict[str, Any]]
    aliases: list[str | None]
    result_formats: list[str]
    error: str | None = None
    kind: str = "timeseries"

    @property
    def empty(self) -> bool:
        return not any(s.get("values") for s in self.series)


async def fetch(
    influx: InfluxSettings,
    model: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    *,
    interval: str | None = None,
) -> list[PanelData]:
    """Run every panel's targets; an error is kept on the panel, not raised."""
    time_from = time_from_of(model)
    step = interval or grafana_interval(time_from)
    out = []
    for panel in model.get("panels", []):
        data = PanelData(_title(panel, values), _english(panel), [], [], [])
        data.kind = str(panel.get("type", "timeseries"))
        for target in panel.get("targets", []):
            text = substitute(target["query"], model, values, time_from=time_from, interval=step)
            try:
                got = await query(influx, text)
            except (SinkError, httpx.HTTPError) as exc:
                data.error = str(exc)[:120] or type(exc).__name__
                continue
            for s in got:
                data.series.append(s)
                data.aliases.append(target.get("alias"))
                data.result_formats.append(target.get("resultFormat", "time_series"))
        out.append(data)
    return out


def _title(panel: Mapping[str, Any], values: Mapping[str, Any] | None) -> str:
    """The title as Grafana shows it: a repeated panel's ``$site`` becomes the chosen
    value(s), or 全部 (all) when none is chosen (the preview then shows every site)."""

    def name(match: re.Match[str]) -> str:
        chosen = (values or {}).get(match.group(1) or match.group(2))
        if not chosen:
            return "全部"
        return chosen if isinstance(chosen, str) else ", ".join(chosen)

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", name, str(panel.get("title", "")))


def _english(panel: Mapping[str, Any]) -> str:
    desc = str(panel.get("description", ""))
    return re.split(r":\s|\.\s|\(", desc, maxsplit=1)[0].strip()[:48] or "panel"


def cjk_font() -> str | None:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in CJK_FONTS if n in names), None)


def _text(text: str, cjk: bool) -> str:
    if cjk:
        return text
    for zh, en in WORDS.items():
        text = text.replace(zh, en)
    return " ".join(_CJK.sub(" ", text).split())


def _series_label(s: Mapping[str, Any], column: str, alias: str | None) -> str:
    tags = s.get("tags") or {}
    if alias:
        label = alias.replace("$col", column).replace("$measurement", s.get("name", ""))
        return re.sub(r"\$tag_(\w+)", lambda m: str(tags.get(m.group(1), "")), label).strip()
    parts = [str(v) for v in tags.values()]
    return " ".join([*parts, column]) if parts else column


def _num(v: float) -> str:
    return "0" if abs(v) < 5e-4 else f"{v:.3g}"


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def draw(ax: Any, data: PanelData, cjk: bool) -> None:
    title = data.title if cjk else data.english
    ax.set_title(_text(title, cjk), fontsize=9)
    if data.error:
        ax.text(
            0.5,
            0.5,
            _text(data.error, cjk),
            ha="center",
            va="center",
            fontsize=7,
            color="red",
            wrap=True,
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    if data.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    curves: list[tuple[str, list[tuple[Any, Any]]]] = []
    bars: list[tuple[str, float]] = []
    texts: list[str] = []
    for s, alias, fmt in zip(data.series, data.aliases, data.result_formats, strict=True):
        cols = s["columns"]
        values = s.get("values", [])
        if data.kind == "table":  # a listing: tags, time of the row and its values
            tags = " ".join(str(v) for v in (s.get("tags") or {}).values())
            for row in values[:12]:
                at = datetime.fromtimestamp(row[0] / 1000, UTC).strftime("%H:%M")
                cells = " ".join(
                    _text(str(v), cjk)
                    for c, v in zip(cols, row, strict=True)
                    if c != "time" and v is not None
                )
                texts.append(f"{tags} {at} {cells}".strip())
            continue
        for c, col in enumerate(cols):
            if col == "time":
                continue
            points = [(row[0], row[c]) for row in values if _numeric(row[c])]
            label = _text(_series_label(s, col, alias), cjk)
            # a time-series panel draws even a one-point series (a single hour's
            # tickets); elsewhere one value is a stat or a bar
            if fmt == "time_series" and points and (len(values) > 1 or data.kind == "timeseries"):
                curves.append((label, points))
            elif points:
                bars += [(label, float(points[-1][1]))]
            else:
                texts += [f"{label}: {row[c]}" for row in values[:6] if row[c] is not None]
    if curves:
        _plot_curves(ax, curves)
    elif len(bars) == 1 and not texts:  # a stat: one big number
        label, value = bars[0]
        ax.text(
            0.5, 0.55, _num(value), ha="center", va="center", fontsize=28, transform=ax.transAxes
        )
        ax.text(0.5, 0.15, label, ha="center", fontsize=8, transform=ax.transAxes)
        ax.set_axis_off()
    elif bars:
        if len(bars) > MAX_BARS:  # the largest, as a wall would sort them
            ax.set_title(f"{ax.get_title()}  (top {MAX_BARS} of {len(bars)})", fontsize=9)
            bars = sorted(bars, key=lambda b: -b[1])[:MAX_BARS]
        ax.barh([b[0] for b in bars], [b[1] for b in bars], color="#3274d9")
        ax.invert_yaxis()
        ax.tick_params(labelsize=7)
        for y, (_, v) in enumerate(bars):
            ax.text(v, y, f" {_num(v)}", va="center", fontsize=7)
    else:
        ax.text(
            0.02,
            0.98,
            "\n".join(t[:90] for t in texts[:12]),
            va="top",
            fontsize=7,
            family="monospace",
            transform=ax.transAxes,
        )
        ax.set_axis_off()


MAX_LEGEND = 8
MAX_BARS = 24


def _plot_curves(ax: Any, curves: list[tuple[str, list[tuple[Any, Any]]]]) -> None:
    """Every series; with many (one per device), the ``MAX_LEGEND`` with the highest
    peak are coloured and named, the others drawn thin and grey behind them."""
    from matplotlib import dates

    ranked = sorted(curves, key=lambda c: -max(v for _, v in c[1]))
    named = ranked if len(ranked) <= MAX_LEGEND else ranked[:MAX_LEGEND]
    for _label, points in reversed(ranked[len(named) :]):
        xs = [datetime.fromtimestamp(t / 1000, UTC) for t, _ in points]
        ax.plot(xs, [v for _, v in points], color="#b0b0b0", linewidth=0.6, alpha=0.6)
    for label, points in reversed(named):
        xs = [datetime.fromtimestamp(t / 1000, UTC) for t, _ in points]
        marker = "o" if len(points) == 1 else None
        ax.plot(xs, [v for _, v in points], label=label, linewidth=1.3, marker=marker)
    times = {t for _, points in ranked for t, _ in points}
    if len(times) == 1:  # one instant: a window around it, not matplotlib's ±2 days
        at = datetime.fromtimestamp(times.pop() / 1000, UTC)
        ax.set_xlim(at - timedelta(minutes=5), at + timedelta(minutes=5))
    ax.xaxis.set_major_formatter(dates.DateFormatter("%H:%M"))
    ax.tick_params(labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    title = None if len(ranked) == len(named) else f"top {len(named)} of {len(ranked)} by peak"
    ax.legend(
        handles[::-1],
        labels[::-1],
        fontsize=6,
        title=title,
        title_fontsize=6,
        loc="upper left",
        ncol=2 if len(named) > 4 else 1,
    )


def render_png(title: str, panels: Sequence[PanelData], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    if font:
        plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
    cols = 3
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.4 * rows), squeeze=False)
    for ax, data in zip(axes.flat, panels, strict=False):
        draw(ax, data, cjk=font is not None)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    fig.suptitle(_text(title, font is not None).strip(" ·") or path.stem, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


async def probe(influx: InfluxSettings) -> None:
    """Refuse, in one line, an InfluxDB that does not answer or lacks the database,
    before drawing dashboards full of errors."""
    try:
        found = await query(influx, "SHOW MEASUREMENTS LIMIT 1")
    except httpx.HTTPError as exc:
        raise SinkError(
            f"InfluxDB at {influx.url} does not answer ({type(exc).__name__}); start the "
            "local stack (gridwatch stack up) or set influx.url"
        ) from exc
    except SinkError as exc:
        raise SinkError(f"InfluxDB at {influx.url}, database {influx.database}: {exc}") from exc
    if not found:  # InfluxDB 1.x answers a missing database with no series
        raise SinkError(
            f"InfluxDB at {influx.url}: database {influx.database} is missing or empty; "
            "nothing to preview (run the pipeline or the demo first, or set influx.database)"
        )


def preview(
    influx: InfluxSettings,
    models: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    values: Mapping[str, Any] | None = None,
    *,
    interval: str | None = None,
) -> dict[str, tuple[Path, int, int]]:
    """One PNG per dashboard; returns stem → (path, panels with data, panels).
    ``$__interval`` is what Grafana picks for the dashboard's time range
    (``grafana_interval``) unless ``interval`` is given."""
    asyncio.run(probe(influx))
    result = {}
    for stem, model in models.items():
        panels = asyncio.run(fetch(influx, model, values, interval=interval))
        title = f"{model.get('title', stem)} · {model.get('description', '')[:60]}"
        path = render_png(title, panels, out_dir / f"{stem}.png")
        result[stem] = (path, sum(not p.empty for p in panels), len(panels))
    return result
