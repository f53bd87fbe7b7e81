"""Model artefacts and model cards.

An artefact lives in ``<root>/<name>/<version>/`` as ``model.pkl`` (the fitted object,
pickled — an artefact, never durable stream state) next to ``card.json``::

    {"name", "version", "created_at", "features", "feature_schema_hash",
     "training_data_hash", "library_versions", "metrics", "params", "notes",
     "artefact_sha256"}

``load`` refuses, with ``SchemaMismatchError``, an artefact whose feature schema differs
from the code's or whose numpy / scikit-learn / scipy major.minor version differs from
the running one; it refuses a corrupted file (checksum) with ``ArtefactError``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import sklearn

from models.errors import ArtefactError, SchemaMismatchError

CHECKED_LIBRARIES = ("numpy", "scipy", "scikit-learn")


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def schema_hash(features: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(features).encode()).hexdigest()[:16]


def data_hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(np.asarray(a, dtype=float))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    features: list[str]
    training_data_hash: str
    created_at: str = ""
    feature_schema_hash: str = ""
    library_versions: dict[str, str] = field(default_factory=library_versions)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    artefact_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ArtefactError(f"malformed model card: {exc}") from exc


def _minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def save(root: Path, obj: Any, card: ModelCard) -> Path:
    """Write ``obj`` and its card; returns the artefact directory."""
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    full = ModelCard(
        **{
            **card.to_dict(),
            "feature_schema_hash": schema_hash(card.features),
            "artefact_sha256": hashlib.sha256(blob).hexdigest(),
        }
    )
    path = root / card.name / card.version
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.pkl").write_bytes(blob)
        (path / "card.json").write_text(
            json.dumps(full.to_dict(), sort_keys=True, indent=2) + "\n", encoding="utf-8"
        )
        (root / card.name / "LATEST").write_text(card.version + "\n", encoding="utf-8")
    except OSError as exc:
        raise ArtefactError(f"cannot save model {card.name!r} to {path}: {exc}") from exc
    return path


def read_card(root: Path, name: str, version: str | None = None) -> ModelCard:
    version = version or latest(root, name)
    if version is None:
        raise ArtefactError(f"no artefact named {name!r} under {root}")
    path = root / name / version / "card.json"
    try:
        return ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"cannot read model card {path}: {exc}") from exc


def latest(root: Path, name: str) -> str | None:
    marker = root / name / "LATEST"
    if not marker.exists():
        return None
    return marker.read_text(encoding="utf-8").strip() or None


def check(card: ModelCard, features: Sequence[str]) -> None:
    """Raise ``SchemaMismatchError`` unless the card fits this code and these libraries."""
    want = schema_hash(features)
    if card.feature_schema_hash != want or list(card.features) != list(features):
        raise SchemaMismatchError(
            f"model {card.name!r} {card.version}: feature schema {card.feature_schema_hash} "
            f"does not match the code's {want} (features {card.features} vs {list(features)}); "
            "retrain with `gridwatch models train`"
        )
    here = library_versions()
    for lib in CHECKED_LIBRARIES:
        built = card.library_versions.get(lib, "?")
        if _minor(built) != _minor(here[lib]):
            raise SchemaMismatchError(
                f"model {card.name!r} {card.version} was built with {lib} {built}, "
                f"this environment has {here[lib]}; retrain with `gridwatch models train`"
            )


def load(
    root: Path, name: str, features: Sequence[str], version: str | None = None
) -> tuple[Any, ModelCard]:
    """Load an artefact after checking its card against ``features`` and library versions."""
    card = read_card(root, name, version)
    check(card, features)
    path = root / name / card.version / "model.pkl"
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ArtefactError(f"cannot read {path}: {exc}") from exc
    if hashlib.sha256(blob).hexdigest() != card.artefact_sha256:
        raise ArtefactError(f"{path}: checksum does not match its model card")
    try:
        obj = pickle.loads(blob)  # our own artefact, checksum verified above
    except Exception as exc:  # unpickling can raise anything; converted to our error
        raise ArtefactError(f"cannot unpickle {path}: {exc}") from exc
    return obj, card
