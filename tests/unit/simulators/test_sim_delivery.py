from __future__ import annotations

from simulators.delivery import expected_seqs, missing, received_seqs
from simulators.messages import Message


def test_missing_seqs_per_topic() -> None:
    sent = expected_seqs(
        [
            Message(0, "gw/v1/water/a", '{"seq":1}'),
            Message(1, "gw/v1/water/a", '{"seq":2}'),
            Message(1, "gw/v1/water/b", '{"seq":7}'),
            Message(2, "gw/v1/water/a", None, b'{"seq":3,'),  # malformed: not matched
        ]
    )
    assert sent.messages == 4 and sent.unreadable == 1
    got = received_seqs([("gw/v1/water/a", b'{"seq":2}'), ("gw/v1/water/a", b'{"seq":2}')])
    assert missing(sent, got) == {"gw/v1/water/a": [1], "gw/v1/water/b": [7]}
    got = received_seqs(
        [("gw/v1/water/a", b'{"seq":1}'), ("gw/v1/water/a", b'{"seq":2}'),
         ("gw/v1/water/b", b'{"seq":7}'), ("gw/v1/water/b", b"\\xff")]
    )  # fmt: skip
    assert missing(sent, got) == {} and got.unreadable == 1


def test_booleans_and_odd_payloads_have_no_seq() -> None:
    got = received_seqs(
        [("t", b'{"seq":true}'), ("t", b"[1]"), ("t", b'{"seq":"3"}'), ("t", b"[" * 5000)]
    )
    assert got.unreadable == 4 and got.seqs == {}
