"""The table value codec: state documents as MessagePack, not JSON.

A stream worker reads and rewrites one state document per device per batch, so the
codec is paid once per reading each way: MessagePack costs ≈ 2 µs per water-site
document each way where JSON cost ≈ 43 µs to encode and ≈ 25 µs to decode, and keeps
NaN (which JSON can only carry as a non-standard token). Documents written as JSON by
an earlier version (Faust's ``json`` codec) still decode, in a table and in its
changelog: a document is a map (a device's state) or a list (a camera's baseline slot),
which MessagePack never starts with ``{`` or ``[`` (there, single small integers).

Tables use this codec through ``streams.tables.state_table``, which also decodes their
changelog with it when a worker recovers.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import numpy as np
from faust.serializers import codecs

NAME = "gw-state"


def _plain(obj: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store a {type(obj).__name__} in a state document")


class StateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return msgpack.packb(obj, default=_plain)

    def _loads(self, s: bytes) -> Any:
        if s[:1] in (b"{", b"["):
            return json.loads(s)
        return msgpack.unpackb(s)


codecs.register(NAME, StateCodec())
