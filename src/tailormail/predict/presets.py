"""Predictive segments `tailormail init` writes: high_value and at_risk, in the segments format.

They read the scores `tailormail predict score` (or the worker) writes to
``traits.predicted``; until a model has scored, nobody matches.
"""

from __future__ import annotations

from pathlib import Path

PRESETS: dict[str, str] = {
    "high_value": """\
name: high_value
description: >-
  The top 10 % of scored profiles by predicted chance of being a top-20 %
  spender over the next 90 days (predict model high_value_90d).
rule:
  trait: predicted.high_value_90d_percentile
  gte: 90
""",
    "at_risk": """\
name: at_risk
description: >-
  Past buyers whose predicted probability of not buying in the next 90 days
  is over 0.7 (predict model churn_90d).
rule:
  all:
    - event: $purchase
    - trait: predicted.churn_90d
      gt: 0.7
""",
}
"""File name stem -> YAML text of each predictive preset segment."""


def write_predict_presets(root: Path) -> list[Path]:
    """Write the predictive preset segments that do not exist yet."""
    from tailormail.segments.presets import write_segment_presets

    return write_segment_presets(root, PRESETS)
