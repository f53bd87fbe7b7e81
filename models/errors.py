"""Errors raised by the models package.

``ModelError``            root of every models/ error (a ``GridWatchError``)
    ``StateError``        a serialised state that cannot be restored (missing/extra keys)
    ``ArtefactError``     a model artefact that cannot be loaded or saved
        ``SchemaMismatchError``  artefact built for another feature schema or library version
"""

from __future__ import annotations

from gridwatch.errors import GridWatchError


class ModelError(GridWatchError):
    """Root of the models package's errors."""


class StateError(ModelError):
    """A serialised scorer state that cannot be restored."""


class ArtefactError(ModelError):
    """A model artefact that cannot be read, written or used."""


class SchemaMismatchError(ArtefactError):
    """An artefact whose feature schema or library versions differ from this build's."""
