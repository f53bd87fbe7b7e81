"""Replay: our JSONL round trip, CSV column mapping, FloodNet raw uplinks → depth."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import numpy as np
import pytest

from simulators.engine import iter_readings
from simulators.output import write_jsonl
from simulators.replay import (
    ReplayError,
    detect_format,
    first_time,
    parse_time,
    read_csv,
    read_floodnet,
    read_jsonl,
)
from simulators.scenario import load_scenario
from tests.conftest import shared_data

FLOODNET = shared_data() / "floodnet_nyc" / "raw_uplinks"
SATYR = FLOODNET / "daily_happy_satyr_2023-05-29_06-28.csv"


def test_parse_time_reads_iso_and_epoch() -> None:
    assert parse_time("2023-05-29 12:05:04.945000+00:00") == pytest.approx(1685361904.945)
    assert parse_time("2023-05-29T12:05:04Z") == 1685361904
    assert parse_time("1685361904945") == pytest.approx(1685361904.945)
    assert parse_time("1685361904") == 1685361904
    with pytest.raises(ReplayError):
        parse_time("yesterday")


def test_jsonl_replays_byte_for_byte_and_shifts(tmp_path) -> None:
    sc = load_scenario("typhoon").with_overrides(duration="20min", size="tiny")
    src = tmp_path / "run.jsonl"
    write_jsonl(iter_readings(sc, np.random.default_rng(1)), src)
    assert detect_format(src) == "jsonl"
    out = tmp_path / "again.jsonl"
    write_jsonl(read_jsonl(src), out)
    assert out.read_bytes() == src.read_bytes()
    shifted = list(read_jsonl(src, shift_s=3600))
    orig = list(read_jsonl(src))
    assert [m.at - 3600 for m in shifted] == [m.at for m in orig]
    a, b = orig[0], shifted[0]
    ta = datetime.fromisoformat(json.loads(a.body)["ts"]).timestamp()
    tb = datetime.fromisoformat(json.loads(b.body)["ts"]).timestamp()
    assert tb - ta == 3600


def test_bad_jsonl_names_the_line(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"at":"2026-07-14T07:00:00Z","payload":{},"topic":"gw/v1/water/a"}\nnope\n')
    with pytest.raises(ReplayError, match=r"x\.jsonl:2"):
        list(read_jsonl(p))


def test_csv_with_column_mapping(tmp_path) -> None:
    p = tmp_path / "levels.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["when", "station", "depth_mm", "volts"])
        w.writerow(["2026-07-14T07:00:00Z", "Pump A", "120", "3.9"])
        w.writerow(["2026-07-14T07:01:00Z", "Pump A", "", "3.9"])
        w.writerow(["1784012520000", "Pump B", "80", "3.8"])
    assert detect_format(p) == "csv"
    msgs = list(
        read_csv(
            p, kind="water", fields={"level_cm": "depth_mm", "battery_v": "volts"},
            time_col="when", device_col="station", scale={"level_cm": 0.1},
        )
    )  # fmt: skip
    assert [m.topic for m in msgs] == [
        "gw/v1/water/pump-a",
        "gw/v1/water/pump-a",
        "gw/v1/water/pump-b",
    ]
    first = json.loads(msgs[0].body)
    assert first == {"battery_v": 3.9, "level_cm": 12.0, "seq": 1, "ts": "2026-07-14T07:00:00Z"}
    assert "level_cm" not in json.loads(msgs[1].body)  # empty cell: field left out
    assert json.loads(msgs[2].body)["seq"] == 1 and msgs[2].at == 1784012520
    assert first_time(p, "csv", "when") == 1784012400


def test_csv_mapping_errors_are_clear(tmp_path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("time,v\n2026-07-14T07:00:00Z,abc\n")
    with pytest.raises(ReplayError, match="no column"):
        list(read_csv(p, kind="water", fields={"level_cm": "depth"}, device_id="d1"))
    with pytest.raises(ReplayError, match="no number"):
        list(read_csv(p, kind="water", fields={"level_cm": "v"}, device_id="d1"))
    with pytest.raises(ReplayError, match="exactly one"):
        list(read_csv(p, kind="water", fields={"level_cm": "v"}))
    with pytest.raises(ReplayError, match="kind"):
        list(read_csv(p, kind="sewage", fields={"level_cm": "v"}, device_id="d1"))


def test_floodnet_distance_becomes_depth_against_the_dry_baseline() -> None:
    assert detect_format(SATYR) == "floodnet"
    msgs = list(read_floodnet(SATYR))
    assert len(msgs) > 10_000
    assert {m.topic for m in msgs} == {"gw/v1/water/fn-daily-happy-satyr"}
    docs = [json.loads(m.body) for m in msgs]
    level = np.array([d["level_cm"] for d in docs])
    at = np.array([m.at for m in msgs])
    # The QC'd flood of 2023-06-03 22:59 – 06-04 03:29 UTC reached 18.31 in (46.5 cm).
    a = datetime.fromisoformat("2023-06-03T22:59:04+00:00").timestamp()
    b = datetime.fromisoformat("2023-06-04T03:29:16+00:00").timestamp()
    inside = level[(at >= a) & (at <= b)]
    assert inside.max() == pytest.approx(46.5, abs=4)
    # Dry most of the time.
    assert abs(np.median(level)) < 1.0
    # Uplink housekeeping travels along.
    assert {"battery_v", "rssi_dbm", "seq", "ts", "level_cm"} == set(docs[0])
    assert docs[1]["seq"] > docs[0]["seq"]


def test_floodnet_baseline_is_causal_or_given() -> None:
    calibrated = list(read_floodnet(SATYR, calibration=30))
    given = list(read_floodnet(SATYR, baseline_mm=1569))
    # Learning the baseline consumes the first readings; a given one does not.
    assert len(given) == len(calibrated) + 29
    assert json.loads(given[0].body)["level_cm"] == 0.0


def test_floodnet_format_is_checked(tmp_path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("time,dist\n1,2\n")
    with pytest.raises(ReplayError, match="not FloodNet"):
        list(read_floodnet(p))


def test_local_times_with_a_format_and_zone_are_sorted(tmp_path) -> None:
    p = tmp_path / "gauges.csv"
    p.write_text(
        "gauge,stamp,rain_in\n"
        "MMPS-149,07/04/2012 10:15:00,0.01\n"  # EDT (UTC-4)
        "MMPS-149,01/04/2012 10:15:00,0.02\n"  # EST (UTC-5)
        "MMPS-177,03/04/2012 10:00:00,0.03\n"
    )
    msgs = list(
        read_csv(
            p, kind="rain", fields={"rain_mm": "rain_in"}, time_col="stamp",
            device_col="gauge", scale={"rain_mm": 25.4}, time_format="%m/%d/%Y %H:%M:%S",
            tz="America/New_York",
        )
    )  # fmt: skip
    ts = [json.loads(m.body)["ts"] for m in msgs]
    assert ts == ["2012-01-04T15:15:00Z", "2012-03-04T15:00:00Z", "2012-07-04T14:15:00Z"]
    assert json.loads(msgs[0].body)["rain_mm"] == pytest.approx(0.508)
    with pytest.raises(ReplayError, match="time zone"):
        parse_time("2012-01-01 00:00:00", tz="Mars/Olympus")
    with pytest.raises(ReplayError, match="cannot read time"):
        parse_time("2012-01-01", fmt="%m/%d/%Y")
