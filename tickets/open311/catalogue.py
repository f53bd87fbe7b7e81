"""The GeoReport services (one per ticket category) and their attributes, as data.

``check_attributes(code, raw)`` validates the ``attribute[code]`` fields of a POST
against a service's definition (pure; raises ``ValueError`` with a readable message).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tickets.open311.wire import Attribute, AttributeValue, Service, ServiceDefinition
from tickets.times import parse_w3c

ATTR_TEXT_MAX = 500


def _values(*pairs: tuple[str, str]) -> list[AttributeValue]:
    return [AttributeValue(key=k, name=n) for k, n in pairs]


def _attr(order: int, code: str, datatype: Any, description: str, **kw: Any) -> Attribute:
    return Attribute(
        variable=kw.pop("variable", True),
        code=code,
        datatype=datatype,
        required=kw.pop("required", False),
        datatype_description=kw.pop("datatype_description", ""),
        order=order,
        description=description,
        values=kw.pop("values", []),
    )


YES_NO = _values(("yes", "是 yes"), ("no", "否 no"))

# code: (name, description, group, attributes)
SERVICES: dict[str, tuple[str, str, str, list[Attribute]]] = {
    "waterlogging": (
        "积水 Waterlogging",
        "Standing water on a road or in an underpass",
        "street",
        [
            _attr(
                1,
                "safety",
                "text",
                "Do not wade into water above the knee; call 110 if someone is trapped.",
                variable=False,
            ),
            _attr(
                2,
                "depth",
                "singlevaluelist",
                "How deep is the water?",
                values=_values(
                    ("ankle", "脚踝 ankle-deep (under 10 cm)"),
                    ("knee", "膝盖 up to the knee (10-40 cm)"),
                    ("deeper", "更深 above the knee"),
                ),
            ),
            _attr(3, "passable", "singlevaluelist", "Can cars still pass?", values=YES_NO),
        ],
    ),
    "bike_overflow": (
        "共享单车堆积 Bike overflow",
        "Shared bikes piled up or blocking",
        "street",
        [
            _attr(
                1,
                "operators",
                "multivaluelist",
                "Whose bikes are they?",
                values=_values(
                    ("hellobike", "哈啰 Hellobike"),
                    ("meituan", "美团 Meituan"),
                    ("didi", "青桔 DiDi"),
                    ("other", "其他 other"),
                ),
            ),
            _attr(
                2,
                "count",
                "number",
                "About how many bikes?",
                datatype_description="a number, e.g. 40",
            ),
        ],
    ),
    "street_vendor": ("占道经营 Street vending", "Unlicensed vending on the street", "street", []),
    "exposed_garbage": (
        "暴露垃圾 Exposed garbage",
        "Garbage left in the open",
        "sanitation",
        [
            _attr(
                1,
                "kind",
                "singlevaluelist",
                "What kind of garbage?",
                values=_values(
                    ("household", "生活垃圾 household"),
                    ("construction", "建筑垃圾 construction"),
                    ("bulky", "大件垃圾 bulky"),
                    ("other", "其他 other"),
                ),
            )
        ],
    ),
    "road_occupation": (
        "道路占用 Road occupation",
        "Road or pavement occupied",
        "street",
        [
            _attr(
                1,
                "since",
                "datetime",
                "Since when has the road been occupied?",
                datatype_description="W3C datetime, e.g. 2026-07-01T08:00:00+08:00",
            )
        ],
    ),
    "crowding": ("人员聚集 Crowding", "Unusual crowding", "public_safety", []),
    "device_fault": (
        "设备故障 Device fault",
        "A street sensor or camera is broken",
        "devices",
        [
            _attr(
                1,
                "faulty_device",
                "string",
                "The number printed on the device, if you can read it",
                datatype_description="e.g. wl-00001",
            ),
            _attr(2, "symptom", "text", "What is wrong with it?"),
        ],
    ),
}


def services() -> list[Service]:
    return [
        Service(
            service_code=code,
            service_name=name,
            description=desc,
            metadata=bool(attrs),
            type="realtime",
            keywords=code.replace("_", ","),
            group=group,
        )
        for code, (name, desc, group, attrs) in SERVICES.items()
    ]


def definition(code: str) -> ServiceDefinition | None:
    entry = SERVICES.get(code)
    return None if entry is None else ServiceDefinition(service_code=code, attributes=entry[3])


def check_attributes(code: str, raw: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The posted attributes of service ``code``, checked and normalised: list values
    as lists of keys, numbers as floats, datetimes as ISO strings in UTC."""
    attrs = {a.code: a for a in SERVICES[code][3] if a.variable}
    unknown = sorted(set(raw) - set(attrs))
    if unknown:
        raise ValueError(f"service {code!r} has no attribute {unknown[0]!r}")
    out: dict[str, Any] = {}
    for a in sorted(attrs.values(), key=lambda a: a.order):
        given = [v.strip() for v in raw.get(a.code, ()) if v.strip()]
        if not given:
            if a.required:
                raise ValueError(f"attribute[{a.code}] is required ({a.description})")
            continue
        keys = {v.key for v in a.values}
        if a.datatype == "multivaluelist":
            wrong = [v for v in given if v not in keys]
            if wrong:
                raise ValueError(
                    f"attribute[{a.code}]: {wrong[0][:40]!r} is not one of {sorted(keys)}"
                )
            out[a.code] = sorted(set(given))
            continue
        if len(given) > 1:
            raise ValueError(f"attribute[{a.code}] takes one value")
        value = given[0]
        if a.datatype == "singlevaluelist" and value not in keys:
            raise ValueError(f"attribute[{a.code}]: {value[:40]!r} is not one of {sorted(keys)}")
        if a.datatype == "number":
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise ValueError(f"attribute[{a.code}]: {value[:40]!r} is not a number")
            out[a.code] = number
            continue
        if a.datatype == "datetime":
            try:
                out[a.code] = parse_w3c(value).isoformat()
            except ValueError as exc:
                raise ValueError(f"attribute[{a.code}]: {exc}") from exc
            continue
        if len(value) > ATTR_TEXT_MAX:
            raise ValueError(f"attribute[{a.code}] is over {ATTR_TEXT_MAX} characters")
        out[a.code] = value
    return out
