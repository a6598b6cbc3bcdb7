"""BG/NBD against the published CDNOW fit, and the CDNOW side-by-side benchmark."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from tailormail.errors import ValidationError
from tailormail.predict import benchmark, bgnbd, cdnow

DATA = Path(__file__).parent / "data"

PUBLISHED = [  # Fader, Hardie and Lee (2005), table 1 / section 5
    ("r", 0.243),
    ("alpha", 4.414),
    ("a", 0.793),
    ("b", 2.426),
    ("log_likelihood", -9582.4),
]


@pytest.fixture(scope="module")
def sample_summary() -> cdnow.Summary:
    return cdnow.summarise(cdnow.load(DATA / "cdnow_sample.txt"), cdnow.CALIBRATION, cdnow.HOLDOUT[1])


@pytest.fixture(scope="module")
def sample_fit(sample_summary: cdnow.Summary) -> bgnbd.BgNbdFit:
    s = sample_summary
    return bgnbd.fit(s.x, s.t_x, s.T)


def test_sample_summary_matches_the_paper(sample_summary: cdnow.Summary) -> None:
    assert len(sample_summary.customer) == 2357
    assert sample_summary.x.sum() == 2457  # repeat purchase days in the 39 calibration weeks
    assert sample_summary.T.max() == pytest.approx(38.86, abs=0.01)


@pytest.mark.parametrize(("name", "published"), PUBLISHED)
def test_fit_reproduces_published_parameters(sample_fit: bgnbd.BgNbdFit, name: str, published: float) -> None:
    assert getattr(sample_fit, name) == pytest.approx(published, rel=0.01)


def test_conditional_expectation_and_p_alive_behave(sample_fit: bgnbd.BgNbdFit) -> None:
    # Same frequency, later last purchase: more likely alive, more expected purchases.
    x, T = np.array([3.0, 3.0, 0.0]), np.array([30.0, 30.0, 30.0])
    t_x = np.array([5.0, 29.0, 0.0])
    alive = bgnbd.p_alive(sample_fit, x, t_x, T)
    expected = bgnbd.expected_purchases(sample_fit, 39, x, t_x, T)
    assert alive[1] > alive[0] and alive[2] == 1.0
    assert expected[1] > expected[0]
    again = bgnbd.p_buys_again(sample_fit, 39, x, t_x, T)
    assert np.all((again > 0) & (again < alive))


def test_unconditional_holdout_forecast_is_in_the_right_range(sample_fit, sample_summary) -> None:
    s = sample_summary
    predicted = bgnbd.expected_purchases(sample_fit, 39, s.x, s.t_x, s.T).sum()
    assert 0.8 * s.holdout.sum() < predicted < 1.1 * s.holdout.sum()


def test_fit_refuses_impossible_histories() -> None:
    with pytest.raises(ValidationError, match="t_x <= T"):
        bgnbd.fit(np.array([1.0]), np.array([5.0]), np.array([2.0]))


def test_loader_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("00001 19970101 1 11.77\n00002 19970112\n", encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        cdnow.load(bad)
    assert caught.value.line == 2


def test_master_layout_with_header_loads() -> None:
    data = cdnow.load(DATA / "cdnow_master.txt")
    assert len(np.unique(data.customer)) == 23570
    assert data.day.min() == cdnow.day_number(date(1997, 1, 1))


@pytest.mark.parametrize("name", ["cdnow_sample.txt", "cdnow_master.txt"])
def test_logistic_regression_matches_bgnbd_auc(name: str) -> None:
    result = benchmark.run(DATA / name)
    bg, lr = result.results
    assert bg.model == "BG/NBD" and lr.model == "logistic regression"
    assert lr.auc >= bg.auc
    assert 0.7 < bg.auc < 0.85
    for row in result.results:  # both forecast the holdout total within 20 %
        assert row.predicted_purchases == pytest.approx(row.actual_purchases, rel=0.2)
