"""Tables of tailormail.toml read into settings: unknown keys and wrong types are refused by name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tailormail.config import Settings
from tailormail.content.recommend.model import RecommendSettings
from tailormail.errors import ConfigError
from tailormail.predict.service import PredictSettings
from tailormail.segments.governance import Limits
from tailormail.track.settings import track_settings


def with_table(name: str, table: dict[str, Any]) -> Settings:
    return replace(Settings(workspace=Path("/ws"), database_url="sqlite://"), raw={name: table})


@pytest.mark.parametrize(
    ("name", "table", "message"),
    [
        ("predict", {"churn_days": "90"}, "[predict].churn_days must be a whole number, not '90'"),
        ("predict", {"churn_days": 45.5}, "[predict].churn_days must be a whole number"),
        ("predict", {"high_value_share": True}, "[predict].high_value_share must be a number, not True"),
        ("predict", {"horizon": 3}, "unknown key [predict].horizon"),
        ("recommend", {"view_weight": "1"}, "[recommend].view_weight must be a number"),
        ("recommend", {"inline_training_max_event": 10}, "unknown key [recommend].inline_training_max_event"),
        ("segments", {"max_actve": 20}, "unknown key [segments].max_actve"),  # a typo was ignored silently
        ("segments", {"overlap_above": "high"}, "[segments].overlap_above must be a number"),
        ("track", {"topics": "offers"}, "[track].topics must be a list, not 'offers'"),
        ("track", {"utm": ["a"]}, "[track].utm must be a dict"),
        ("track", {"base_url": 8000}, "[track].base_url must be a string, not 8000"),
    ],
)
def test_a_wrong_value_names_the_file_table_key_and_type(name: str, table: dict[str, Any], message: str) -> None:
    settings = with_table(name, table)
    read = {
        "predict": PredictSettings.from_settings,
        "recommend": RecommendSettings.of,
        "segments": Limits.of,
        "track": track_settings,
    }[name]
    with pytest.raises(ConfigError) as caught:
        read(settings)
    assert message in caught.value.message and "tailormail.toml" in caught.value.message


@pytest.mark.parametrize(
    ("name", "table", "field", "value"),
    [
        ("predict", {"high_value_share": 1}, "high_value_share", 1.0),  # a whole number where a number is wanted
        ("predict", {"churn_days": 60}, "churn_days", 60),
        ("track", {"batch_ms": 0}, "batch_ms", 0.0),
        ("track", {"topics": ["news"]}, "topics", ["news"]),
    ],
)
def test_good_values_are_read(name: str, table: dict[str, Any], field: str, value: Any) -> None:
    settings = with_table(name, table)
    read = PredictSettings.from_settings(settings) if name == "predict" else track_settings(settings)
    assert getattr(read, field) == value and type(getattr(read, field)) is type(value)
