"""The models benchmark measures every stage at every batch size, wall and CPU time."""

from __future__ import annotations

import io
import json

from rich.console import Console

from models.bench import BATCHES, run_bench


def test_bench_reports_wall_and_cpu_rates(tmp_path):
    path = tmp_path / "bench.json"
    out = io.StringIO()
    doc = run_bench(path, min_seconds=0.01, console=Console(file=out, width=200))
    assert "qc + detection" in out.getvalue()
    assert json.loads(path.read_text()) == doc
    for key in ("results", "results_per_cpu_second"):
        table = doc[key]
        assert "qc + detection (water)" in table
        for row in table.values():
            assert set(row) == {str(b) for b in BATCHES}
            assert all(v > 0 for v in row.values())
