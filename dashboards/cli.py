"""``gridwatch dashboards build|check|preview|publish``.

Imports of grafana-foundation-sdk and grafana-client happen inside the commands, so the
rest of the ``gridwatch`` CLI starts even where those packages are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridwatch.errors import ConfigError

app = typer.Typer(no_args_is_help=True, add_completion=False)
console = Console()


@app.command("build")
def build_cmd() -> None:
    """Regenerate dashboards/generated/*.json and the device gazetteer from the code."""
    from dashboards.build import PACKAGE_DIR, build

    written = build()
    for path in written:
        console.print(f"wrote {path.relative_to(PACKAGE_DIR.parent)}")
    console.print(f"{len(written)} file(s) changed" if written else "up to date")


@app.command("check")
def check_cmd() -> None:
    """Fail (exit 1) when the committed JSON differs from what the code generates."""
    from dashboards.build import PACKAGE_DIR, render_all

    stale = [
        str(rel)
        for rel, text in render_all().items()
        if not (PACKAGE_DIR / rel).exists()
        or (PACKAGE_DIR / rel).read_text(encoding="utf-8") != text
    ]
    if stale:
        console.print(f"stale: {', '.join(stale)}; run `gridwatch dashboards build`")
        raise typer.Exit(1)
    console.print("generated dashboards match the code")


@app.command("preview")
def preview_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory for the PNGs.")] = Path(
        "var/dashboards-preview"
    ),
    grid: Annotated[
        list[str] | None, typer.Option("--grid", help="Limit to these grids (default all).")
    ] = None,
    district: Annotated[
        list[str] | None, typer.Option("--district", help="Limit to these districts.")
    ] = None,
) -> None:
    """Run every panel's queries against the configured InfluxDB; one PNG per dashboard."""
    from dashboards.build import load_generated
    from dashboards.preview import preview
    from gridwatch.cli import settings

    values: dict[str, list[str]] = {}
    if grid:
        values["grid"] = grid
    if district:
        values["district"] = district
    result = preview(settings().influx, load_generated(), out, values)
    for stem, (path, with_data, total) in result.items():
        console.print(f"{stem:13} {with_data:2}/{total:2} panels with data  {path}")


@app.command("publish")
def publish_cmd(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL, e.g. http://grafana:3000")],
    token: Annotated[
        str,
        typer.Option("--token", envvar="GRAFANA_TOKEN", help="Service-account token (Editor+)."),
    ],
    influx_url: Annotated[
        str | None,
        typer.Option(help="InfluxDB URL as Grafana reaches it (default: influx.url)."),
    ] = None,
) -> None:
    """Push the datasource, the folder and every dashboard; write only what changed."""
    from dashboards.build import GAZETTEER_DIR, load_generated
    from dashboards.publish import Publisher, datasource_payload
    from gridwatch.cli import settings

    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url must start with http:// or https://, not {url!r}")
    if not (GAZETTEER_DIR / "gridwatch-devices.json").exists():
        raise ConfigError("dashboards/gazetteer is missing; run `gridwatch dashboards build`")
    publisher = Publisher.connect(url.rstrip("/"), token)
    report = publisher.publish(
        {m["uid"]: m for m in load_generated().values()},
        datasource_payload(settings().influx, influx_url),
    )
    console.print(report.line())
