"""Our NAB scorer against NAB's published per-file scores (development categories)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import nab

ROOT = Path("/work/shared/data/nab")
pytestmark = pytest.mark.skipif(not ROOT.exists(), reason="shared NAB data not mounted")


@pytest.fixture(scope="module")
def corpus():
    wins = nab.load_windows(ROOT / "labels/combined_windows.json")
    files = sorted(nab.load_published(ROOT / "results/null/null_standard_scores.csv"))
    out = {}
    for f in files:
        ts, v = nab.load_series(ROOT / "data" / f)
        out[f] = (nab.layout(ts, wins[f]), v)
    return out


@pytest.fixture(scope="module")
def gaussian_scores(corpus):
    return {f: nab.windowed_gaussian(v) for f, (_, v) in corpus.items()}


def _check(pub, lay, scores, profile):
    r = nab.score_file(lay, scores, pub["Threshold"], profile)
    assert r.score == pytest.approx(pub["Score"], abs=1e-6)
    assert (r.tp, r.tn, r.fp, r.fn, r.total) == (
        pub["TP"],
        pub["TN"],
        pub["FP"],
        pub["FN"],
        pub["Total_Count"],
    )


@pytest.mark.parametrize("profile", list(nab.PROFILES))
def test_null_detector_per_file(corpus, profile):
    pub = nab.load_published(ROOT / f"results/null/null_{profile}_scores.csv")
    assert len(pub) == 25
    for f, row in pub.items():
        lay, v = corpus[f]
        _check(row, lay, np.zeros(v.size), profile)


@pytest.mark.parametrize("profile", list(nab.PROFILES))
def test_windowed_gaussian_per_file(corpus, gaussian_scores, profile):
    pub = nab.load_published(
        ROOT / f"results/windowedGaussian/windowedGaussian_{profile}_scores.csv"
    )
    assert len(pub) == 25
    for f, row in pub.items():
        _check(row, corpus[f][0], gaussian_scores[f], profile)


def test_normalised_corpus_score_of_numenta(corpus):
    pub = nab.load_published(ROOT / "results/numenta/numenta_standard_scores.csv")
    n = sum(corpus[f][0].n_windows for f in pub)
    assert n == 39
    assert nab.normalise(sum(r["Score"] for r in pub.values()), n) == pytest.approx(66.88, abs=0.01)


def test_score_curve_matches_score_file(corpus, gaussian_scores):
    rng = np.random.default_rng(0)
    for f in list(corpus)[:8]:
        lay, v = corpus[f]
        s = np.clip(gaussian_scores[f] + rng.normal(0, 0.05, v.size), 0, 1)
        th = np.array([0.3, 0.7, 0.95, 0.999])
        curve = nab.score_curve(lay, s, th)
        for t, c in zip(th, curve, strict=True):
            assert c == pytest.approx(nab.score_file(lay, s, t).score, abs=1e-9)


def test_sigmoid_edges():
    assert nab.scaled_sigmoid(np.array(0.0)) == pytest.approx(0.0)
    assert nab.scaled_sigmoid(np.array(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(np.array(3.0)) == -1.0
    assert nab.probationary_length(4032) == 604
    assert nab.probationary_length(22695) == 750


@pytest.mark.slow
def test_our_detector_on_the_development_categories():
    from models import evaluate

    res = evaluate.evaluate_nab(ROOT)
    assert res["windows"] == 39
    std = res["ours"]["standard"]["normalised_at_tuned_threshold"]
    # measured 71.7 with the committed parameters (θ tuned on these files); the issue's
    # target is 67, Numenta HTM's published per-file scores on the same files give 66.9
    assert std >= 67.0
    assert res["published"]["numenta"]["standard"] == pytest.approx(66.88, abs=0.01)
