"""Place an Open311 address on the grid map, with the registry as the gazetteer (pure).

What the registry can name: devices (``wl-00001``) and their sites (``site-wl-00001``),
grids and micro-grids by id (``D01-S01-G01``, ``D01-S01-G01-M2``) or by name
(``网格 1-1``). An ``address_id`` must be one of those exactly; an ``address_string`` is
searched for one of them (a device or site id or a grid id as a word, or a grid's full
name). Streets and districts are too large to place a request in one grid, so they are
not matches. Anything else is not geocoded: the request keeps its address and waits for
an operator to place it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gridwatch.registry import Registry

_WORD = re.compile(r"[a-z0-9][a-z0-9-]*")
PLACEABLE = ("grid", "micro_grid")


@dataclass(frozen=True)
class Place:
    lon: float
    lat: float
    address_id: str  # the registry id the address was matched to
    how: str  # "device", "site", "grid"


def _by_id(registry: Registry, key: str) -> Place | None:
    placement = registry.devices.get(key)
    if placement is not None:
        d = placement.device
        return Place(d.lon, d.lat, d.device_id, "device")
    for p in registry.devices.values():
        if p.device.site is not None and p.device.site.lower() == key:
            return Place(p.device.lon, p.device.lat, p.device.site, "site")
    for gid, info in registry.grids.items():
        if gid.lower() == key and info.level in PLACEABLE:
            point = registry.geometry[gid].representative_point()
            return Place(point.x, point.y, gid, "grid")
    return None


def geocode(registry: Registry, address_string: str = "", address_id: str = "") -> Place | None:
    """Where the address is, or None when the registry cannot say."""
    if address_id.strip():
        return _by_id(registry, address_id.strip().lower())
    text = " ".join(address_string.split()).lower()
    if not text:
        return None
    for word in _WORD.findall(text):
        place = _by_id(registry, word)
        if place is not None:
            return place
    # the longest grid name the address contains ("网格 1-10" before "网格 1-1")
    named = sorted(
        (
            (len(info.name), gid)
            for gid, info in registry.grids.items()
            if info.level in PLACEABLE and info.name and info.name.lower() in text
        ),
        reverse=True,
    )
    if named:
        gid = named[0][1]
        point = registry.geometry[gid].representative_point()
        return Place(point.x, point.y, gid, "grid")
    return None


def describe(registry: Registry, grid_id: str) -> str:
    """A readable address for a grid: its name and its street's and district's."""
    parts = []
    current: str | None = grid_id
    while current is not None and current in registry.grids:
        info = registry.grids[current]
        if info.level != "micro_grid":
            parts.append(f"{info.name} ({info.id})" if info.name else info.id)
        current = info.parent
    return ", ".join(parts)
