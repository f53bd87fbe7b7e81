"""InfluxQL targets and annotations for grafana-foundation-sdk.

The SDK ships no InfluxDB dataquery type, so this module adds one in the SDK's own
shape: a model with ``to_json`` (what Grafana stores in a panel's ``targets``) and a
builder with ``build()``, accepted wherever the SDK takes a
``Builder[Dataquery]``. Queries are raw InfluxQL (``rawQuery: true``), which InfluxDB
1.x answers directly and 2.x/3.x through a DBRP mapping (DESIGN.md, InfluxDB).
"""

from __future__ import annotations

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dbmodel

DATASOURCE_UID = "gridwatch-influx"
DATASOURCE_TYPE = "influxdb"

ResultFormat = Literal["time_series", "table", "logs"]


def datasource() -> dbmodel.DataSourceRef:
    """The provisioned datasource (dashboards/provisioning/datasources/influxdb.yaml)."""
    return dbmodel.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


def datasource_json() -> dict[str, object]:
    return {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target of Grafana's InfluxDB datasource."""

    def __init__(
        self,
        query: str = "",
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        hide: bool | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": datasource_json(),
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of an ``InfluxQLQuery``: ``InfluxQL("SELECT …").ref_id("B").table()``."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> Self:
        """Table result: tags become columns (needed by geomap lookups and tables)."""
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        """Series name pattern, e.g. ``$tag_device`` or ``$tag_device $col``."""
        self._internal.alias = alias
        return self


class InfluxAnnotationQuery(dbmodel.AnnotationQuery):
    """An annotation read from InfluxDB with InfluxQL.

    Grafana's InfluxDB datasource takes ``query`` plus ``textColumn``/``tagsColumn``
    (and migrates them into ``target`` itself); both are written so that either the
    current or the legacy annotation editor shows the same query.
    """

    def __init__(self) -> None:
        super().__init__()
        self.query = ""
        self.text_column = ""
        self.tags_column = ""
        self.title_column = ""

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload["datasource"] = datasource_json()
        payload["query"] = self.query
        payload["textColumn"] = self.text_column
        payload["tagsColumn"] = self.tags_column
        if self.title_column:
            payload["titleColumn"] = self.title_column
        payload["target"] = {
            "query": self.query,
            "rawQuery": True,
            "refId": "Anno",
            "resultFormat": "table",
        }
        return payload


class InfluxAnnotation(cogbuilder.Builder[dbmodel.AnnotationQuery]):
    def __init__(self, name: str, query: str) -> None:
        self._internal = InfluxAnnotationQuery()
        self._internal.name = name
        self._internal.query = query
        self._internal.enable = True
        self._internal.datasource = datasource()

    def build(self) -> InfluxAnnotationQuery:
        return self._internal

    def icon_color(self, color: str) -> Self:
        self._internal.icon_color = color
        return self

    def text_column(self, column: str) -> Self:
        self._internal.text_column = column
        return self

    def tags_column(self, columns: str) -> Self:
        self._internal.tags_column = columns
        return self

    def title_column(self, column: str) -> Self:
        self._internal.title_column = column
        return self
