"""``gridwatch evaluate`` on the real stack: a shortened storm scored against its truth.

The evaluate path (run the pipeline, score, query InfluxDB for the timeline, write the
markdown, PNGs and JSON) on one short scenario, and the figures recounted from the
tickets the store holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch.evaluate import evaluate_scenarios
from gridwatch.settings import Settings
from simulators.scenario import load_scenario

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.e2e
@pytest.mark.slow
def test_evaluate_a_short_storm_writes_a_consistent_report(
    e2e_settings: Settings, tmp_path: Path
) -> None:
    sc = load_scenario("rainstorm-50y").with_overrides(duration="100min", max_devices=250)
    report = tmp_path / "report"
    doc = evaluate_scenarios(
        e2e_settings, [sc], report, tmp_path / "out" / "summary.json", manage_stack=False
    )
    assert (report / "report.md").is_file()
    text = (report / "report.md").read_text(encoding="utf-8")
    assert "## rainstorm-50y" in text and "waterlogging" in text
    for name in ("lead_times.png", "grid_map.png", "storm_timeline.png"):
        png = report / "rainstorm-50y" / name
        assert png.read_bytes()[:8] == PNG, name
        assert png.stat().st_size > 10_000, name  # a drawn figure, not an empty canvas
        assert f"rainstorm-50y/{name}" in text
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert on_disk == doc
    board = doc["scenarios"]["rainstorm-50y"]["scoreboard"]
    overall, floods = board["overall"], board["categories"]["waterlogging"]

    # the figures agree with the tickets the store holds
    tickets = _store_tickets(e2e_settings)
    proactive = [
        t for t in tickets if t["source"] != "complaint" and t["category"] != "device_fault"
    ]
    assert overall["proactive_tickets"] == len(proactive)
    assert overall["true_tickets"] + overall["false_tickets"] == len(proactive)
    assert overall["retracted"] == sum(1 for t in proactive if t["state"] == "retracted")
    faults = board["device_faults"]
    assert faults["maintenance_tickets"] == sum(
        1 for t in tickets if t["category"] == "device_fault"
    )
    assert board["duplicates"] == 0
    # and with the ground truth's incidents
    truth = [
        json.loads(line)
        for line in (report / "rainstorm-50y" / "run" / "incidents.jsonl").read_text().splitlines()
    ]
    called = [i for i in truth if i["first_complaint_at"] and i["category"] != "device_fault"]
    assert overall["complained"] == len(called)
    assert overall["incidents"] == sum(1 for i in truth if i["category"] != "device_fault")
    assert faults["faults"] == sum(1 for i in truth if i["category"] == "device_fault")
    assert floods["complained"] > 0, "the shortened storm must flood sites residents call about"
    assert 0.0 <= overall["preemption_rate"] <= 1.0
    assert 0 <= overall["blind_complained"] <= overall["complained"]
    assert overall["duplicates_reactive"] <= overall["duplicates"]
    assert (
        overall["preempted"]
        + overall["late"]
        + overall["retracted_before_call"]
        + overall["reactive_only"]
        + overall["missed"]
        == overall["complained"]
    )
    # honest floors from runs of this shortened storm (see the README's scoreboard)
    assert floods["preemption_rate"] >= 0.8
    assert floods["recall_worthy"] >= 0.8
    lead = floods["lead_complaint_min"]
    assert lead["n"] == floods["preempted"] and lead["median"] > 0
    for outcome in board["incidents"]:
        if outcome["outcome"] == "pre-empted":
            assert outcome["lead_complaint_min"] >= 0
    timeline = doc["scenarios"]["rainstorm-50y"]["timeline_incident"]
    assert timeline and ":waterlogging:" in timeline


def _store_tickets(settings: Settings) -> list[dict[str, str]]:
    from sqlalchemy import select

    from tickets.db import make_engine, session_factory
    from tickets.models import Ticket

    engine = make_engine(settings.tickets.db_url)
    try:
        with session_factory(engine)() as s:
            return [
                {"source": t.source, "category": t.category, "state": t.state}
                for t in s.scalars(select(Ticket))
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["no-such-scenario"], "cannot read scenario no-such-scenario"),
        (["rainstorm-50y", "--report", "/proc/gridwatch-report"], "cannot write to"),
        (["rainstorm-50y", "--json", "/proc/nope/summary.json"], "cannot write to"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GW_")}
    # nothing may start: point the stack at a private var directory and unused ports
    env["GW_STACK__VAR_DIR"] = str(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, "-m", "gridwatch", "evaluate", *args, "--report", str(tmp_path / "r")]
        if "--report" not in args
        else [sys.executable, "-m", "gridwatch", "evaluate", *args],
        env={**env, "COLUMNS": "500"},  # one line however long the path
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, done.stderr
    assert says in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "var" / "mosquitto").exists()  # no stack was started
