"""The segments `tailormail init` writes; event names come from tailormail.toml [events]."""

from __future__ import annotations

from pathlib import Path

PRESETS: dict[str, str] = {
    "cart_abandoners": """\
name: cart_abandoners
description: >-
  Added something to the cart between 7 days and 24 hours ago and has not
  purchased since (a later purchase removes them).
rule:
  event: $add_to_cart
  window: {from: 7 days, to: 24 hours}
  not_followed_by: {event: $purchase}
""",
    "active_buyers": """\
name: active_buyers
description: Purchased in the last 7 days.
rule:
  event: $purchase
  window: {last: 7 days}
""",
    "engaged_browsers": """\
name: engaged_browsers
description: At least 3 product views in the last 7 days and no purchase in the last 30 days.
rule:
  all:
    - event: $product_view
      at_least: 3
      window: {last: 7 days}
    - event: $purchase
      performed: false
      window: {last: 30 days}
""",
    "new_subscribers": """\
name: new_subscribers
description: Has an email address and was first seen in the last 30 days.
rule:
  all:
    - trait: email
      exists: true
    - profile: first_seen
      within_last_days: 30
""",
    "lapsed_customers": """\
name: lapsed_customers
description: Has purchased before, but not in the last 90 days.
rule:
  event: $purchase
  last: {before: 90 days ago}
""",
}
"""File name stem -> YAML text of each preset."""


def write_segment_presets(root: Path, presets: dict[str, str] | None = None) -> list[Path]:
    """Write the preset segment files (default: PRESETS) that do not exist yet."""
    folder = root / "segments"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (PRESETS if presets is None else presets).items():
        path = folder / f"{name}.yaml"
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
