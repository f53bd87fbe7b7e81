from __future__ import annotations

import json

import numpy as np
import pytest

from gridwatch.errors import GridWatchError
from models import registry
from models.errors import ArtefactError, SchemaMismatchError

FEATURES = ["a", "b"]


def _card(**kw):
    base = {"name": "m", "version": "v1", "features": FEATURES, "training_data_hash": "x"}
    return registry.ModelCard(**{**base, **kw})


def test_round_trip(tmp_path):
    obj = {"w": np.arange(3.0)}
    path = registry.save(tmp_path, obj, _card(metrics={"mae": 1.0}))
    assert (path / "card.json").exists()
    loaded, card = registry.load(tmp_path, "m", FEATURES)
    np.testing.assert_array_equal(loaded["w"], obj["w"])
    assert card.metrics == {"mae": 1.0}
    assert card.feature_schema_hash == registry.schema_hash(FEATURES)
    assert registry.latest(tmp_path, "m") == "v1"


def test_feature_schema_mismatch_is_refused(tmp_path):
    registry.save(tmp_path, 1, _card())
    with pytest.raises(SchemaMismatchError, match="feature schema"):
        registry.load(tmp_path, "m", ["a", "c"])


def test_library_version_mismatch_is_refused(tmp_path):
    path = registry.save(tmp_path, 1, _card())
    doc = json.loads((path / "card.json").read_text())
    doc["library_versions"]["scikit-learn"] = "0.1.0"
    (path / "card.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaMismatchError, match=r"scikit-learn 0\.1\.0") as info:
        registry.load(tmp_path, "m", FEATURES)
    assert isinstance(info.value, GridWatchError)


def test_corrupt_artefact_and_missing_model(tmp_path):
    path = registry.save(tmp_path, 1, _card())
    (path / "model.pkl").write_bytes(b"garbage")
    with pytest.raises(ArtefactError, match="checksum"):
        registry.load(tmp_path, "m", FEATURES)
    with pytest.raises(ArtefactError, match="no artefact"):
        registry.load(tmp_path, "other", FEATURES)


def test_data_hash_changes_with_data():
    a = np.arange(10.0)
    assert registry.data_hash(a) == registry.data_hash(a.copy())
    assert registry.data_hash(a) != registry.data_hash(a + 1e-9)
