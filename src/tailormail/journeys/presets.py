"""The journeys `tailormail init` writes: the mission's automations, ready to edit."""

from __future__ import annotations

from pathlib import Path

PRESETS = {
    "cart_abandonment": """\
description: Remind people who left items in their cart, then suggest alternatives.
kind: marketing
entry:
  event: $add_to_cart
goal: $purchase          # buying ends the run at any step
reentry: 7 days          # a person may start again a week after their last cart
steps:
  - id: wait_1h
    wait: 1 hour
  - id: reminder
    send: cart_reminder  # shows the cart's items from the trigger event
  - id: wait_23h
    wait: 23 hours
  - id: still_no_purchase
    branch:
      if: {not: {event: $purchase, window: {last: 1 day}}}
      then: recommendations
      else: exit
  - id: recommendations
    send: cart_recommendations
""",
    "welcome_series": """\
description: Greet new subscribers, then show what others buy.
kind: marketing
entry:
  segment_entered: new_subscribers
reentry: never
steps:
  - id: welcome
    send: welcome
  - id: wait_3d
    wait: 3 days
  - id: bought_yet
    branch:
      if: {event: $purchase, window: {last: 3 days}}
      then: exit
      else: first_order_nudge
  - id: first_order_nudge
    send: {template: newsletter, subject_variants: ["Picked for you", "Your first order ships free"]}
""",
    "birthday": """\
description: A birthday greeting at 9:00 in each person's own timezone.
kind: marketing
entry:
  date: {trait: birthday, at: "09:00"}
reentry: 300 days
steps:
  - id: greeting
    send: birthday
""",
    "post_purchase_cross_sell": """\
description: Three days after an order, suggest what goes with it.
kind: marketing
entry:
  event: $purchase
reentry: 14 days
steps:
  - id: wait_3d
    wait: 3 days
  - id: cross_sell
    send: cross_sell
""",
    "win_back": """\
description: Win back past buyers the churn model calls at risk; A/B test the offer against a holdout.
kind: marketing
entry:
  segment_entered: at_risk
reentry: 60 days
goal: $purchase
steps:
  - id: offer_test
    split:
      arms:
        - {name: reminder, weight: 45, next: plain}
        - {name: discount, weight: 45, next: discount}
      holdout: 10
  - id: plain
    send: win_back
    next: exit
  - id: discount
    send: {template: win_back, subject_variants: ["We miss you: 15% off", "Come back for 15% off"]}
""",
}
"""File name stem -> YAML text of each preset journey."""


def write_journey_presets(root: Path) -> list[Path]:
    """Write the preset journeys that do not exist yet."""
    folder = root / "journeys"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in PRESETS.items():
        path = folder / f"{name}.yaml"
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
