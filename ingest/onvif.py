"""ONVIF-style analytics events (JSON rendering) → camera draft readings.

Cameras behind an ONVIF→MQTT gateway publish on ``gw/v1/camera/{device}`` one of:

* one event notification::

    {"Topic": "tns1:RuleEngine/CountAggregation/Counter",
     "UtcTime": "2026-11-23T08:00:00Z",
     "Source": {"VideoSource": "vs0", "Rule": "people-in-square"},
     "Data": {"ObjectClass": "Human", "Count": 12}}

  ``Source``/``Data`` may also be ONVIF's item lists,
  ``{"SimpleItem": [{"Name": "Count", "Value": 12}, ...]}``;
* several: ``{"NotificationMessage": [event, ...]}``;
* a scene-description frame (ONVIF Analytics, JSON syntax)::

    {"Frame": {"UtcTime": "...", "Object": [
        {"ObjectId": 1, "Appearance": {"Class": {"Type": [
            {"Value": "Human", "Likelihood": 0.9}]}}}]}}

  each object counted once under its most likely class.

Topics understood (anything else → ``schema``):

==============================================  ===========================================
``tns1:RuleEngine/CountAggregation/Counter``    ``Data.Count`` objects of the class (max)
``tns1:RuleEngine/FieldDetector/ObjectsInside`` ``Data.Count`` objects inside (max)
``tns1:RuleEngine/LineDetector/Crossed``        ``Data.Count`` crossings, default 1 (summed)
``tns1:VideoSource/ImageTooBlurry|Dark|Bright`` ``Data.State`` true → status ``degraded``
``tns1:VideoSource/GlobalSceneChange``          ``Data.State`` true → status ``obstructed``
``tns1:VideoSource/SignalLoss``                 ``Data.State`` true → status ``offline``
==============================================  ===========================================

The class (``ObjectClass``, ``ClassFilter`` or ``ClassType`` in ``Data`` or ``Source``)
maps through ``ONVIF_CLASSES``; Face/LicensePlate (parts of a counted object), Animal and
Other are ignored; an unknown class is a schema error. Counts must be JSON integers (no
numbers as strings, even though ONVIF's XML carries text). Events with the same
``UtcTime`` make one reading; occupancy-style counts of one class take the maximum
(overlapping fields would double count), line crossings add up.
"""

from __future__ import annotations

from typing import Any

from gridwatch.contracts import DeadLetterReason
from gridwatch.errors import ContractError
from ingest.native import Draft
from ingest.timestamps import event_ms

MAX_EVENTS = 256
MAX_COUNT = 1_000_000

ONVIF_CLASSES: dict[str, str | None] = {
    "human": "person",
    "person": "person",
    "vehicle": "vehicle",
    "vehical": "vehicle",  # the spelling of ONVIF's original ClassType enumeration
    "car": "vehicle",
    "bus": "vehicle",
    "truck": "vehicle",
    "motorcycle": "vehicle",
    "bicycle": "bike",
    "bike": "bike",
    "vendor": "vendor",
    "streetvendor": "vendor",
    "garbage": "garbage",
    "trash": "garbage",
    "roadoccupation": "road_occupation",
    "face": None,
    "licenseplate": None,
    "animal": None,
    "other": None,
}
_COUNT_TOPICS = {
    "tns1:RuleEngine/CountAggregation/Counter": "max",
    "tns1:RuleEngine/FieldDetector/ObjectsInside": "max",
    "tns1:RuleEngine/LineDetector/Crossed": "sum",
}
_STATE_TOPICS = {
    "tns1:VideoSource/ImageTooBlurry": "degraded",
    "tns1:VideoSource/ImageTooDark": "degraded",
    "tns1:VideoSource/ImageTooBright": "degraded",
    "tns1:VideoSource/GlobalSceneChange": "obstructed",
    "tns1:VideoSource/SignalLoss": "offline",
}
_STATUS_RANK = {"ok": 0, "degraded": 1, "obstructed": 2, "offline": 3}
_CLASS_KEYS = ("ObjectClass", "ClassFilter", "ClassType")


def is_onvif(body: dict[str, Any]) -> bool:
    return "Topic" in body or "NotificationMessage" in body or "Frame" in body


def _schema(detail: str) -> ContractError:
    return ContractError(DeadLetterReason.SCHEMA, detail)


def _items(value: Any, where: str) -> dict[str, Any]:
    """``{"Name": value}`` from a flat object or an ONVIF ``SimpleItem`` list."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _schema(f"ONVIF {where} must be an object")
    if "SimpleItem" not in value:
        return value
    items = value["SimpleItem"]
    if len(value) != 1 or not isinstance(items, list):
        raise _schema(f"ONVIF {where}.SimpleItem must be the only key and a list")
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or set(item) != {"Name", "Value"}:
            raise _schema(f"ONVIF {where}.SimpleItem entries need exactly Name and Value")
        name = item["Name"]
        if not isinstance(name, str) or name in out:
            raise _schema(f"ONVIF {where}.SimpleItem name invalid or repeated")
        out[name] = item["Value"]
    return out


def _count(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise _schema(f"ONVIF {what} must be an integer in 0..{MAX_COUNT}")
    return value


def _class(name: Any) -> str | None:
    if not isinstance(name, str):
        raise _schema("ONVIF object class must be a string")
    key = name.replace(" ", "").replace("_", "").lower()
    if key not in ONVIF_CLASSES:
        raise _schema(f"unknown ONVIF object class {name[:32]!r}")
    return ONVIF_CLASSES[key]


class _Group:
    def __init__(self, ts_ms: float) -> None:
        self.ts_ms = ts_ms
        self.max: dict[str, int] = {}
        self.sum: dict[str, int] = {}
        self.status = "ok"
        self.measured = False

    def draft(self) -> Draft:
        counts = dict(self.max)
        for cls, n in self.sum.items():
            counts[cls] = counts.get(cls, 0) + n
        return Draft(
            ts_ms=self.ts_ms,
            fields={"counts": counts, "status": self.status},
            measured=self.measured,
        )


def onvif_drafts(body: dict[str, Any]) -> list[Draft]:
    """Map one ONVIF payload to camera drafts sorted by time."""
    groups: dict[float, _Group] = {}
    if "Frame" in body:
        if len(body) != 1:
            raise _schema("an ONVIF frame payload holds only 'Frame'")
        _frame(body["Frame"], groups)
    elif "NotificationMessage" in body:
        events = body["NotificationMessage"]
        if len(body) != 1 or not isinstance(events, list) or not events:
            raise _schema("NotificationMessage must be the only key and a non-empty list")
        if len(events) > MAX_EVENTS:
            raise _schema(f"more than {MAX_EVENTS} ONVIF events")
        for event in events:
            _event(event, groups)
    else:
        _event(body, groups)
    return [groups[t].draft() for t in sorted(groups)]


def _group(groups: dict[float, _Group], utc_time: Any) -> _Group:
    ts_ms = event_ms(utc_time if isinstance(utc_time, str) else None, "ONVIF UtcTime")
    group = groups.get(ts_ms)
    if group is None:
        group = groups[ts_ms] = _Group(ts_ms)
    return group


def _event(event: Any, groups: dict[float, _Group]) -> None:
    if not isinstance(event, dict):
        raise _schema("ONVIF event must be an object")
    extra = set(event) - {"Topic", "UtcTime", "Source", "Data", "PropertyOperation", "Key"}
    if extra:
        raise _schema(f"unknown ONVIF event field {sorted(extra)[0][:40]!r}")
    topic = event.get("Topic")
    if not isinstance(topic, str):
        raise _schema("ONVIF event needs a Topic string")
    group = _group(groups, event.get("UtcTime"))
    source = _items(event.get("Source"), "Source")
    data = _items(event.get("Data"), "Data")
    base = topic.split("/", 2)
    topic2 = "/".join(base[:2]) if topic.startswith("tns1:VideoSource/") else topic
    if topic in _COUNT_TOPICS:
        mode = _COUNT_TOPICS[topic]
        raw_cls = next((d[k] for d in (data, source) for k in _CLASS_KEYS if k in d), None)
        if raw_cls is None:
            raise _schema(f"{topic} event names no object class")
        cls = _class(raw_cls)
        if "Count" in data:
            n = _count(data["Count"], "Data.Count")
        elif mode == "sum":
            n = 1  # a plain LineDetector/Crossed event is one crossing
        else:
            raise _schema(f"{topic} event needs Data.Count")
        group.measured = True
        if cls is None:
            return
        if mode == "max":
            group.max[cls] = max(group.max.get(cls, 0), n)
        else:
            group.sum[cls] = group.sum.get(cls, 0) + n
    elif topic2 in _STATE_TOPICS:
        state = data.get("State")
        if not isinstance(state, bool):
            raise _schema(f"{topic2} event needs a boolean Data.State")
        status = _STATE_TOPICS[topic2] if state else "ok"
        if _STATUS_RANK[status] > _STATUS_RANK[group.status]:
            group.status = status
    else:
        raise _schema(f"unsupported ONVIF topic {topic[:80]!r}")


def _frame(frame: Any, groups: dict[float, _Group]) -> None:
    if not isinstance(frame, dict):
        raise _schema("ONVIF Frame must be an object")
    group = _group(groups, frame.get("UtcTime"))
    objects = frame.get("Object", [])
    if not isinstance(objects, list) or len(objects) > MAX_EVENTS * 4:
        raise _schema("ONVIF Frame.Object must be a list of at most 1024 objects")
    group.measured = True
    for obj in objects:
        cls = _class(_best_class(obj))
        if cls is not None:
            group.max[cls] = group.max.get(cls, 0) + 1


def _best_class(obj: Any) -> str:
    """The most likely class of one scene object (``Type`` or ``ClassCandidate`` form)."""
    appearance = obj.get("Appearance") if isinstance(obj, dict) else None
    klass = appearance.get("Class") if isinstance(appearance, dict) else None
    if not isinstance(klass, dict):
        return "Other"  # an unclassified object counts for nothing
    candidates = klass.get("Type", klass.get("ClassCandidate"))
    if not isinstance(candidates, list) or not candidates:
        raise _schema("ONVIF Class needs a non-empty Type or ClassCandidate list")
    best, best_p = None, -1.0
    for cand in candidates:
        if not isinstance(cand, dict):
            raise _schema("ONVIF class candidate must be an object")
        value = cand.get("Value", cand.get("Type"))
        p = cand.get("Likelihood")
        if not isinstance(value, str) or isinstance(p, bool) or not isinstance(p, int | float):
            raise _schema("ONVIF class candidate needs a class name and a numeric Likelihood")
        if not 0 <= p <= 1:
            raise _schema("ONVIF Likelihood must lie in 0..1")
        if p > best_p:
            best, best_p = value, p
    return best if best is not None else "Other"
