"""Write a run to a directory: messages as JSONL, ground truth, and the city.

Layout of ``--out DIR``::

    DIR/messages.jsonl     one publish per line (see ``simulators.messages``)
    DIR/incidents.jsonl    ground-truth incidents
    DIR/complaints.jsonl   gridwatch.contracts.Complaint records (the hotline calls)
    DIR/faults.jsonl       every injected fault
    DIR/city/grids.geojson, DIR/city/devices.json   the registry the run used
    DIR/run.json           scenario (as validated), seed, counts
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.messages import Message, TsCache


@dataclass
class RunSummary:
    messages: int = 0
    raw: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    first_at: int | None = None
    last_at: int | None = None

    def add(self, msg: Message) -> None:
        self.messages += 1
        if msg.body is None:
            self.raw += 1
        if self.first_at is None:
            self.first_at = msg.at
        self.last_at = msg.at


def write_jsonl(
    messages: Iterable[Message],
    path: Path,
    *,
    on_message: Callable[[Message], None] | None = None,
    count_kinds: bool = True,
) -> RunSummary:
    """Write messages one per line; returns counts. Lines are built without json.dumps."""
    summary = RunSummary()
    ts = TsCache()
    kinds = summary.by_kind
    buf: list[str] = []
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for msg in messages:
            buf.append(msg.line(ts(msg.at)))
            if count_kinds:
                kinds[msg.topic[6 : msg.topic.index("/", 6)]] += 1
            if on_message is not None:
                on_message(msg)
            if len(buf) >= 4096:
                buf.append("")
                fh.write("\n".join(buf))
                summary.messages += len(buf) - 1
                buf.clear()
        if buf:
            buf.append("")
            fh.write("\n".join(buf))
            summary.messages += len(buf) - 1
    return summary


def write_run_info(directory: Path, info: dict[str, Any]) -> None:
    (directory / "run.json").write_text(
        json.dumps(info, sort_keys=True, indent=2, ensure_ascii=False, default=str) + "\n",
        encoding="utf-8",
    )
