"""Date, inactivity and broadcast entries on a real database with a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tailormail.clock import ManualClock, to_ms
from tailormail.journeys.runner import JourneyRunner
from tailormail.journeys.scheduled import enter_scheduled
from tailormail.runtime import Runtime
from test_journeys_runner import RecordingEffects, load, pid

BIRTHDAY = """
entry: {date: {trait: birthday, at: "09:00"}}
reentry: 300 days
steps:
  - send: birthday
"""
LAPSED = """
entry: {inactive: 30 days}
reentry: 60 days
steps:
  - send: win_back
"""


def identify(runtime: Runtime, user: str, **traits: object) -> None:
    runtime.ingestor.ingest_raw(
        [
            {
                "type": "identify",
                "userId": user,
                "traits": traits,
                "timestamp": runtime.clock.now().isoformat(),
                "messageId": f"id-{user}",
            }
        ]
    )


def run(runtime: Runtime, runner: JourneyRunner) -> int:
    with runtime.store.begin() as conn:
        started = enter_scheduled(conn, runner, to_ms(runtime.clock.now()))
    with runtime.store.begin() as conn:
        runner.fire_due_timers(conn, to_ms(runtime.clock.now()))
    return started


def test_birthdays_enter_at_nine_in_each_persons_timezone_once(runtime: Runtime, clock: ManualClock) -> None:
    effects = RecordingEffects()
    runner = JourneyRunner({"birthday": load("birthday", BIRTHDAY)}, effects)
    clock.set(datetime(2026, 3, 10, 0, 0, tzinfo=UTC))
    identify(runtime, "tokyo", birthday="1990-03-10", timezone="Asia/Tokyo")  # 09:00 there = 00:00 UTC
    identify(runtime, "london", birthday="1985-03-10", timezone="Europe/London")
    identify(runtime, "other", birthday="1985-07-01", timezone="Europe/London")
    assert run(runtime, runner) == 1
    assert [s[1] for s in effects.sent] == [pid(runtime, "tokyo")]
    clock.set(datetime(2026, 3, 10, 8, 59, tzinfo=UTC))
    assert run(runtime, runner) == 0
    clock.set(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    assert run(runtime, runner) == 1
    clock.advance(timedelta(hours=1))
    assert run(runtime, runner) == 0  # re-entry after 300 days only
    assert sorted(s[1] for s in effects.sent) == sorted([pid(runtime, "tokyo"), pid(runtime, "london")])


def test_leap_day_birthdays_are_celebrated_on_feb_28(runtime: Runtime, clock: ManualClock) -> None:
    runner = JourneyRunner({"birthday": load("birthday", BIRTHDAY)}, RecordingEffects())
    clock.set(datetime(2027, 2, 28, 10, 0, tzinfo=UTC))
    identify(runtime, "leap", birthday="2000-02-29", timezone="UTC")
    assert run(runtime, runner) == 1


def test_inactivity_enters_people_once_after_thirty_quiet_days(runtime: Runtime, clock: ManualClock) -> None:
    effects = RecordingEffects()
    runner = JourneyRunner({"lapsed": load("lapsed", LAPSED)}, effects)
    identify(runtime, "quiet")
    clock.advance(timedelta(days=20))
    identify(runtime, "busy")
    clock.advance(timedelta(days=10, hours=1))
    clock.set(clock.now().replace(hour=12))  # outside quiet hours
    assert run(runtime, runner) == 1
    assert run(runtime, runner) == 0
    assert [s[1] for s in effects.sent] == [pid(runtime, "quiet")]
