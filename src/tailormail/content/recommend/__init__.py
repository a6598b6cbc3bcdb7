"""Product recommendations: the co-occurrence model and its offline evaluation."""

from tailormail.content.recommend.evaluate import Evaluation, evaluate
from tailormail.content.recommend.model import (
    Product,
    RecommendSettings,
    clear_cache,
    products_in,
    recommend_for,
    recommendation_source,
)

__all__ = [
    "Evaluation",
    "Product",
    "RecommendSettings",
    "clear_cache",
    "evaluate",
    "products_in",
    "recommend_for",
    "recommendation_source",
]
