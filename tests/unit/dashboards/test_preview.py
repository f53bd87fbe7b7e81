"""The preview's drawing rules on made-up query results (the queries themselves run
against the real InfluxDB in tests/integration/dashboards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboards.preview import (
    MAX_BARS,
    MAX_LEGEND,
    PanelData,
    _title,
    draw,
    preview,
    render_png,
)


def _series(n: int, points: int = 20) -> list[dict[str, object]]:
    return [
        {
            "name": "water",
            "tags": {"device": f"wl-{i:03d}"},
            "columns": ["time", "max"],
            "values": [[1_700_000_000_000 + 60_000 * t, float(i + t)] for t in range(points)],
        }
        for i in range(n)
    ]


def _panel(series: list[dict[str, object]], kind: str = "timeseries") -> PanelData:
    data = PanelData("积水深度", "Depth", [], [], [])
    data.kind = kind
    for s in series:
        data.series.append(s)
        data.aliases.append("$tag_device")
        data.result_formats.append("time_series")
    return data


def test_a_repeated_panels_variable_is_named_in_its_title() -> None:
    assert _title({"title": "积水深度与预报 · $site"}, None) == "积水深度与预报 · 全部"
    assert _title({"title": "x ${site}"}, {"site": ["a", "b"]}) == "x a, b"
    assert _title({"title": "x $site"}, {"site": "wl-001"}) == "x wl-001"


def test_one_series_per_device_names_only_the_highest(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw(ax, _panel(_series(40)), cjk=False)
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == MAX_LEGEND
    assert labels[0] == "wl-039"  # the highest peak first
    assert len(ax.get_lines()) == 40  # the others are drawn, unnamed
    plt.close(fig)
    # and a dashboard of such panels lays out without matplotlib's warning
    # (pytest turns warnings into errors)
    path = render_png("t", [_panel(_series(120)) for _ in range(6)], tmp_path / "t.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_many_bars_keep_the_largest(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw(ax, _panel(_series(60, points=1), kind="bargauge"), cjk=False)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == MAX_BARS and labels[0] == "wl-059"
    assert f"top {MAX_BARS} of 60" in ax.get_title()
    plt.close(fig)


def test_an_unreachable_influxdb_is_one_clear_error(tmp_path: Path) -> None:
    from gridwatch.errors import SinkError
    from gridwatch.settings import InfluxSettings
    from gridwatch.stack import free_port

    influx = InfluxSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=2.0)
    with pytest.raises(SinkError, match="does not answer"):
        preview(influx, {}, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing drawn


def test_a_one_point_series_is_drawn_beside_longer_ones() -> None:
    """Tickets per hour: a category whose tickets all fell in one hour is one point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw(ax, _panel(_series(1, points=3) + _series(2, points=1)[1:]), cjk=False)
    legend = ax.get_legend()
    assert legend is not None
    assert sorted(t.get_text() for t in legend.get_texts()) == ["wl-000", "wl-001"]
    plt.close(fig)
