"""Experiment statistics agree with scipy and statsmodels; verdicts are honest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW
from typer.testing import CliRunner

from tailormail.analytics import experiments as ex
from tailormail.analytics.verdicts import analyze
from tailormail.cli import app

PROPORTION_CASES = [
    # (x_arm, n_arm, x_control, n_control)
    (120, 1000, 100, 1000),
    (30, 400, 45, 420),
    (512, 10_000, 430, 9_950),
    (7, 90, 3, 110),
]


@pytest.mark.parametrize(("x1", "n1", "x0", "n0"), PROPORTION_CASES)
def test_proportions_match_statsmodels(x1: int, n1: int, x0: int, n0: int) -> None:
    diff, diff_ci, lift, lift_ci, p = ex.compare_proportions(x1, n1, x0, n0)
    assert p == pytest.approx(proportions_ztest([x1, x0], [n1, n0])[1], rel=1e-9)
    assert diff_ci == pytest.approx(confint_proportions_2indep(x1, n1, x0, n0, method="wald", compare="diff"))
    ratio_ci = confint_proportions_2indep(x1, n1, x0, n0, method="log", compare="ratio")
    assert (lift_ci[0] + 1, lift_ci[1] + 1) == pytest.approx(ratio_ci)
    assert diff == pytest.approx(x1 / n1 - x0 / n0) and lift == pytest.approx((x1 / n1) / (x0 / n0) - 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_means_match_scipy_welch_and_statsmodels_interval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    arm = rng.exponential(12.0, 800) * (rng.random(800) < 0.3)
    ctl = rng.exponential(10.0, 900) * (rng.random(900) < 0.3)
    diff, diff_ci, _lift, _lift_ci, p = ex.compare_means(arm, ctl)
    assert p == pytest.approx(stats.ttest_ind(arm, ctl, equal_var=False).pvalue, rel=1e-9)
    expected_ci = CompareMeans(DescrStatsW(arm), DescrStatsW(ctl)).tconfint_diff(usevar="unequal")
    assert diff_ci == pytest.approx(expected_ci)
    assert diff == pytest.approx(arm.mean() - ctl.mean())


def test_chi_square_across_arms_matches_scipy() -> None:
    successes, totals = [100, 120, 90], [1000, 1000, 1010]
    table = [[x, n - x] for x, n in zip(successes, totals, strict=True)]
    assert ex.chi_square_across_arms(successes, totals) == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue
    )


@pytest.mark.parametrize(("baseline", "mde"), [(0.10, 0.10), (0.03, 0.20), (0.25, 0.05)])
def test_sample_size_matches_statsmodels_power(baseline: float, mde: float) -> None:
    h = proportion_effectsize(baseline * (1 + mde), baseline)
    expected = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
    assert ex.sample_size_proportion(baseline, mde) == math.ceil(expected)


def test_probability_to_beat_control_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    a = rng.beta(1 + 120, 1 + 880, 400_000)
    c = rng.beta(1 + 100, 1 + 900, 400_000)
    assert ex.probability_to_beat_proportion(120, 1000, 100, 1000) == pytest.approx((a > c).mean(), abs=0.005)
    assert ex.probability_to_beat_proportion(100, 1000, 100, 1000) == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize(
    ("counts", "weights", "mismatch"),
    [
        ({"A": 5000, "B": 5050}, None, False),
        ({"A": 5000, "B": 5400}, None, True),
        ({"A": 4500, "B": 4500, "holdout": 1000}, {"A": 0.45, "B": 0.45, "holdout": 0.1}, False),
        ({"A": 4500, "B": 4500, "holdout": 1000}, None, True),
    ],
)
def test_sample_ratio_mismatch(counts: dict[str, int], weights: dict[str, float] | None, mismatch: bool) -> None:
    assert ex.sample_ratio(counts, weights).mismatch is mismatch


def conversions(n: int, rate: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return (rng.random(n) < rate).astype(float).tolist()


def test_no_winner_while_underpowered_even_when_significant() -> None:
    obs = {"control": {"c": conversions(600, 0.10, 1)}, "B": {"c": conversions(600, 0.17, 2)}}
    result = analyze(obs, "control", ["c"], ex.Plan(mde=0.05))
    metric = result.metrics[0]
    assert metric.underpowered and metric.winner is None
    assert "underpowered" in metric.verdict and "needs" in metric.verdict


def test_winner_declared_after_planned_sample_when_significant() -> None:
    obs = {"control": {"c": conversions(20_000, 0.10, 3)}, "B": {"c": conversions(20_000, 0.12, 4)}}
    metric = analyze(obs, "control", ["c"], ex.Plan(mde=0.10)).metrics[0]
    assert not metric.underpowered and metric.winner == "B"
    assert metric.verdict.startswith("c: B beats control by +")


def test_no_difference_means_no_winner() -> None:
    obs = {"control": {"c": conversions(20_000, 0.10, 5)}, "B": {"c": conversions(20_000, 0.10, 6)}}
    metric = analyze(obs, "control", ["c"]).metrics[0]
    assert metric.winner is None and "no significant difference" in metric.verdict


def test_three_arms_use_bonferroni_and_an_omnibus_test() -> None:
    obs = {a: {"c": conversions(5000, 0.1, i)} for i, a in enumerate(["control", "B", "C"])}
    metric = analyze(obs, "control", ["c"]).metrics[0]
    assert metric.alpha_per_comparison == pytest.approx(0.025)
    assert metric.omnibus_p_value is not None


def write_table(tmp_path: Path, kind: str) -> Path:
    rng = np.random.default_rng(9)  # 3000/3000/600 arms, so an equal-split check must flag them
    arms = ["static"] * 3000 + ["dynamic"] * 3000 + ["holdout"] * 600
    converted = [int(rng.random() < (0.05 if a != "dynamic" else 0.08)) for a in arms]
    revenue = [round(float(rng.exponential(40)), 2) if c else 0.0 for c in converted]
    table = pa.table({"variant": arms, "converted": converted, "revenue": revenue})
    path = tmp_path / f"exp.{kind}"
    if kind == "parquet":
        pq.write_table(table, path)
    else:
        _csv(table, path)
    return path


def _csv(table: pa.Table, path: Path) -> None:
    rows = table.to_pylist()
    lines = ["variant,converted,revenue"] + [f"{r['variant']},{r['converted']},{r['revenue']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_cli_analyze_prints_json_for_proportion_and_mean_metrics(tmp_path: Path, kind: str) -> None:
    path = write_table(tmp_path, kind)
    args = [
        "experiment",
        "analyze",
        str(path),
        "--arm",
        "variant",
        "--control",
        "static",
        "--metric",
        "converted",
        "--metric",
        "revenue",
        "--json",
        "--weights",
        "static=0.4545,dynamic=0.4545,holdout=0.091",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    kinds = {m["metric"]: m["kind"] for m in data["metrics"]}
    assert kinds == {"converted": "proportion", "revenue": "mean"}
    assert data["sample_ratio"]["mismatch"] is False
    dynamic = next(c for c in data["metrics"][0]["comparisons"] if c["arm"] == "dynamic")
    assert dynamic["difference"] > 0 and dynamic["n"] == 3000


def test_cli_table_output_and_clear_errors(tmp_path: Path) -> None:
    path = write_table(tmp_path, "csv")
    ok = CliRunner().invoke(
        app, ["experiment", "analyze", str(path), "--arm", "variant", "--control", "static", "--metric", "converted"]
    )
    assert ok.exit_code == 0 and "static (control)" in ok.output and "P(beat control)" in ok.output
    missing = CliRunner().invoke(
        app, ["experiment", "analyze", str(path), "--arm", "arm", "--control", "static", "--metric", "converted"]
    )
    assert missing.exit_code == 65 and "no column 'arm'" in missing.output and "variant" in missing.output
    bad = tmp_path / "bad.csv"
    bad.write_text("variant,converted\nstatic,1\nstatic,yes\n")
    wrong = CliRunner().invoke(
        app, ["experiment", "analyze", str(bad), "--arm", "variant", "--control", "static", "--metric", "converted"]
    )
    assert wrong.exit_code == 65 and "line 3" in wrong.output and "'yes'" in wrong.output


@pytest.mark.parametrize(("mean", "sd", "mde"), [(10.0, 25.0, 0.1), (3.0, 4.0, 0.05)])
def test_sample_size_for_means_matches_statsmodels(mean: float, sd: float, mde: float) -> None:
    expected = NormalIndPower().solve_power(effect_size=mean * mde / sd, alpha=0.05, power=0.8, ratio=1.0)
    assert ex.sample_size_mean(mean, sd, mde) == math.ceil(expected)


def test_a_control_with_no_conversions_cannot_be_planned_and_is_underpowered() -> None:
    obs = {"A": {"c": [0.0] * 50}, "B": {"c": [0.0] * 45 + [1.0] * 5}}
    metric = analyze(obs, "A", ["c"]).metrics[0]
    assert metric.planned_n is None and metric.underpowered and metric.winner is None
    assert "no sample size can be planned" in metric.verdict
