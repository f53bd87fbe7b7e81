"""Did a run arrive complete? Sequence numbers per device, sent against received.

``expected_seqs`` reads what a run published (its messages), ``received_seqs`` what a
subscriber saw (topic, payload bytes), and ``missing`` compares them. Messages without
a readable integer ``seq`` (malformed-payload faults) are counted apart, not matched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from simulators.messages import Message


@dataclass
class SeqCount:
    seqs: dict[str, set[int]] = field(default_factory=dict)
    unreadable: int = 0
    messages: int = 0

    def add(self, topic: str, payload: bytes) -> None:
        self.messages += 1
        seq = _seq(payload)
        if seq is None:
            self.unreadable += 1
            return
        self.seqs.setdefault(topic, set()).add(seq)


def _seq(payload: bytes) -> int | None:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    seq = doc.get("seq") if isinstance(doc, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def expected_seqs(messages: Iterable[Message]) -> SeqCount:
    out = SeqCount()
    for msg in messages:
        out.add(msg.topic, msg.payload_bytes())
    return out


def received_seqs(received: Iterable[tuple[str, bytes]]) -> SeqCount:
    out = SeqCount()
    for topic, payload in received:
        out.add(topic, payload)
    return out


def missing(sent: SeqCount, got: SeqCount) -> dict[str, list[int]]:
    """Per topic, the sequence numbers that were sent and never received."""
    gaps = {}
    for topic, seqs in sent.seqs.items():
        lost = seqs - got.seqs.get(topic, set())
        if lost:
            gaps[topic] = sorted(lost)
    return gaps
