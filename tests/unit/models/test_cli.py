"""The models CLI end to end with tiny settings (real files, real artefacts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models import flood_forecast as ff
from models import registry
from models.cli import app
from models.errors import SchemaMismatchError
from models.train import FLOOD_DESIGN

DATA = Path("/work/shared/data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    art = tmp_path_factory.mktemp("art")
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--artefacts",
            str(art),
            "--seeds",
            "1",
            "--sites",
            "8",
            "--minutes",
            "900",
            "--max-iter",
            "5",
            "--version",
            "t1",
        ],
    )
    assert res.exit_code == 0, res.output
    return art


def test_train_writes_artefact_with_card(trained):
    card = registry.read_card(trained, "flood")
    assert card.version == "t1"
    assert card.features == list(FLOOD_DESIGN)
    assert card.library_versions["scikit-learn"]
    assert "storms-seed101" in card.metrics
    model, note = ff.load_forecaster(trained)
    assert note == "trained t1"
    assert isinstance(model, ff.TrainedFloodForecaster)


def test_mismatched_artefact_falls_back_or_refuses(trained, tmp_path):
    art = tmp_path / "art"
    import shutil

    shutil.copytree(trained, art)
    card_path = art / "flood" / "t1" / "card.json"
    doc = json.loads(card_path.read_text())
    doc["features"] = [*doc["features"][:-1], "something_else"]
    card_path.write_text(json.dumps(doc))
    model, note = ff.load_forecaster(art)
    assert isinstance(model, ff.ReservoirForecaster)
    assert "refused" in note
    with pytest.raises(SchemaMismatchError):
        ff.load_forecaster(art, strict=True)


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason="shared data not mounted")
def test_evaluate_writes_report_json_and_pngs(trained, tmp_path):
    out = tmp_path / "report"
    js = tmp_path / "figures.json"
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--report",
            str(out),
            "--json",
            str(js),
            "--data",
            str(DATA),
            "--artefacts",
            str(trained),
            "--storm-sites",
            "6",
            "--storm-minutes",
            "900",
            "--skip",
            "nab",
            "--skip",
            "floodnet_profiles",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    assert doc["floodnet_raw"]["qc_events"] == 13
    assert doc["floodnet_raw"]["detected"] >= 12
    assert doc["floodnet_raw"]["dry_control_false_detections_ours"] <= 2
    assert "norfolk" in doc and "bikes" in doc and "storms" in doc and "calit2" in doc
    assert any("nab: skipped" in x for x in doc["not_done"])
    text = (out / "report.md").read_text()
    assert "FloodNet" in text and "Simulated storms" in text
    rows = doc["flood_vs_persistence"]
    assert {r["horizon_min"] for r in rows} == {15, 30, 60}
    assert all(isinstance(r["beats_persistence"], bool) for r in rows)
    assert "against persistence" in text
    assert list(out.glob("*.png"))
