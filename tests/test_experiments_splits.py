"""Journey splits as experiments: people assigned by the real runner, judged on the goal against the holdout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailormail.analytics.experiment_data import HOLDOUT, SplitPlan, all_experiments, split_experiments, split_plans
from tailormail.cli import app
from tailormail.clock import ManualClock
from tailormail.journeys.runner import JourneyRunner
from tailormail.runtime import Runtime
from tailormail.store import journeys as journey_q
from tailormail.store import profiles as profile_q
from test_journeys_runner import RecordingEffects, load, track

PROMO = """
entry: {event: signed_up}
goal: $purchase
steps:
  - id: test
    split:
      arms: [{name: offer, weight: 1, next: send_offer}]
      holdout: 1
  - {id: send_offer, send: offer}
"""
USERS = [f"u{i}" for i in range(60)]


@pytest.fixture
def assigned(runtime: Runtime, clock: ManualClock) -> dict[str, str]:
    """Sixty people enter the promo journey; everyone the runner put in the offer arm buys within two days."""
    runner = JourneyRunner({"promo": load("promo", PROMO)}, RecordingEffects())
    runtime.ingestor.hooks.append(runner.on_events)
    for user in USERS:
        track(runtime, user, "signed_up")
    with runtime.store.read() as conn:
        rows = [r for r in journey_q.log_of(conn, range(1, 200)) if r["action"] == "assigned"]
    arm_of = {r["profile_id"]: r["detail"]["arm"] for r in rows}
    assert set(arm_of.values()) == {"offer", HOLDOUT} and len(arm_of) == len(USERS)
    clock.advance(timedelta(days=2))
    with runtime.store.read() as conn:
        ids = profile_q.profile_ids_by_user(conn, USERS)
    by_pid = {ids[u]: u for u in USERS}
    buyers = [by_pid[pid] for pid, arm in arm_of.items() if arm == "offer"]
    for user in buyers:
        track(runtime, user, "purchase", revenue=20.0)
    clock.advance(timedelta(days=30))
    track(runtime, by_pid[next(p for p, a in arm_of.items() if a == HOLDOUT)], "purchase", revenue=99.0)  # too late
    return {by_pid[pid]: arm for pid, arm in arm_of.items()}


def test_a_split_is_an_experiment_with_the_holdout_as_control(runtime: Runtime, assigned: dict[str, str]) -> None:
    plans = {("promo", "test"): SplitPlan({"offer": 1.0, HOLDOUT: 1.0})}
    with runtime.store.read() as conn:
        [(experiment, weights)] = split_experiments(conn, goal_event="purchase", window_days=5, plans=plans)
        [(name, result)] = all_experiments(conn, goal_event="purchase", attribution_days=5, plans=plans)
    offers = sum(arm == "offer" for arm in assigned.values())
    assert experiment.control == HOLDOUT and weights == {"offer": 1.0, HOLDOUT: 1.0}
    assert sum(experiment.observations["offer"]["converted"]) == offers
    assert sum(experiment.observations[HOLDOUT]["converted"]) == 0  # the purchase 32 days later is outside
    assert sum(experiment.observations["offer"]["revenue"]) == 20.0 * offers
    assert name == "journey promo / split test" and result.control == HOLDOUT
    converted = next(m for m in result.metrics if m.metric == "converted")
    assert converted.control_value == 0.0 and converted.comparisons[0].value == 1.0
    assert converted.comparisons[0].p_value < 0.001 and not result.sample_ratio.mismatch


def test_split_plans_come_from_the_workspace_journeys(runtime: Runtime) -> None:
    plans = split_plans(runtime.settings)
    assert plans[("win_back", "offer_test")].weights == {"reminder": 45, "discount": 45, HOLDOUT: 10}


def test_metrics_experiments_prints_every_split(runtime: Runtime, assigned: dict[str, str], workspace: Path) -> None:
    result = CliRunner().invoke(app, ["metrics", "--experiments", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert "journey promo / split test" in result.output and "holdout (control)" in result.output
