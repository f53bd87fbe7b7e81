"""The abuse drill (misbehaving devices and clients) lives in ``gridwatch.abuse``; this
module only registers it, importing it when it runs."""

from __future__ import annotations

import importlib

from gridwatch.drills import DrillContext, DrillError, DrillResult, drill


@drill("abuse", "misbehaving devices and clients cannot take the pipeline down (gridwatch.abuse)")
def abuse(ctx: DrillContext) -> DrillResult:
    try:
        module = importlib.import_module("gridwatch.abuse")
    except ModuleNotFoundError as exc:
        if exc.name != "gridwatch.abuse":
            raise
        raise DrillError("gridwatch.abuse is not there yet; the abuse drill cannot run") from exc
    out = module.run_abuse(ctx.stack.settings)  # it isolates itself (topics, store)
    figures = dict(out.get("figures", {}))
    return DrillResult(
        name="abuse",
        holds=str(out.get("holds", "")),
        passed=bool(out.get("passed")),
        figures=figures,
        failures=[str(f) for f in out.get("failures") or figures.get("failures") or []],
    )
