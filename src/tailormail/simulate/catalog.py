"""The simulated shop's catalog: categories, products, prices and popularity.

Popularity inside a category follows a Zipf-like curve, as in real shops: a
few products sell most, a long tail sells rarely.  That skew is what gives
"bestsellers" and recommendations something to find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

SHOP_URL = "https://shop.example.com"
"""Where simulated product pages live (a reserved example domain)."""
IMAGE_URL = "https://cdn.example.com/images"
"""Where simulated product images live."""


@dataclass(frozen=True)
class Category:
    """A product category: how it is named, priced and how popular it is."""

    name: str
    nouns: tuple[str, ...]
    brands: tuple[str, ...]
    median_price: float
    popularity: float


CATEGORIES: tuple[Category, ...] = (
    Category(
        "Apparel",
        ("T-Shirt", "Hoodie", "Jeans", "Dress", "Jacket", "Sweater", "Shorts", "Shirt"),
        ("Northwind", "Loomcraft", "Urban Thread"),
        45.0,
        1.6,
    ),
    Category(
        "Shoes",
        ("Sneakers", "Boots", "Sandals", "Loafers", "Running Shoes", "Slippers"),
        ("Stride", "Pacer", "Cobble & Co"),
        85.0,
        1.2,
    ),
    Category(
        "Accessories",
        ("Backpack", "Wallet", "Sunglasses", "Watch", "Scarf", "Belt", "Cap"),
        ("Carryall", "Northwind", "Lumen"),
        35.0,
        1.0,
    ),
    Category(
        "Beauty",
        ("Face Serum", "Moisturizer", "Lip Balm", "Shampoo", "Perfume", "Sunscreen"),
        ("Glowlab", "Petal", "Aqua Pura"),
        25.0,
        1.1,
    ),
    Category(
        "Home",
        ("Throw Blanket", "Scented Candle", "Cushion", "Table Lamp", "Vase", "Picture Frame"),
        ("Hearth", "Nestwell", "Linden"),
        40.0,
        0.9,
    ),
    Category(
        "Kitchen",
        ("Chef's Knife", "Coffee Grinder", "Frying Pan", "Teapot", "Cutting Board", "Mug Set"),
        ("Copperline", "Hearth", "Brewhaus"),
        50.0,
        0.8,
    ),
    Category(
        "Electronics",
        ("Headphones", "Bluetooth Speaker", "Smartwatch", "Power Bank", "Keyboard", "Webcam"),
        ("Voltix", "Sonora", "Pixelcore"),
        120.0,
        1.0,
    ),
    Category(
        "Sports",
        ("Yoga Mat", "Dumbbell Set", "Water Bottle", "Resistance Bands", "Tennis Racket"),
        ("Peakform", "Stride", "Trailhead"),
        40.0,
        0.7,
    ),
    Category(
        "Outdoors",
        ("Tent", "Sleeping Bag", "Hiking Poles", "Headlamp", "Camping Stove", "Rain Jacket"),
        ("Trailhead", "Summit", "Wildway"),
        95.0,
        0.5,
    ),
    Category(
        "Books",
        ("Cookbook", "Travel Guide", "Novel", "Photo Book", "Notebook", "Planner"),
        ("Inkwell Press", "Folio", "Paperlane"),
        18.0,
        0.8,
    ),
)
"""The shop's ten categories."""

ADJECTIVES: tuple[str, ...] = (
    "Classic",
    "Everyday",
    "Premium",
    "Organic",
    "Compact",
    "Deluxe",
    "Essential",
    "Vintage",
    "Lightweight",
    "Signature",
    "Modern",
    "Cozy",
    "Bold",
    "Travel",
    "Pro",
    "Eco",
)


@dataclass(frozen=True)
class Catalog:
    """Products and the arrays that let behaviour pick them fast."""

    products: list[dict[str, Any]]
    """One dict per product: product_id, name, category, brand, price, url, image_url."""
    category_names: list[str]
    category_weight: np.ndarray
    """How popular each category is overall (sums to 1)."""
    product_category: np.ndarray
    """The category index of each product (products are grouped by category)."""
    stacked_popularity: np.ndarray
    """Per category c, c + the cumulative popularity inside c: one searchsorted picks a product."""

    def pick(self, categories: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Product indexes for category indexes, chosen by popularity (``uniforms`` in [0, 1))."""
        index = np.searchsorted(self.stacked_popularity, categories + uniforms, side="right")
        return np.minimum(index, len(self.products) - 1)

    def line(self, index: int) -> dict[str, Any]:
        """The Segment e-commerce fields of one product (for events and order lines)."""
        p = self.products[index]
        return {"product_id": p["product_id"], "name": p["name"], "category": p["category"], "price": p["price"]}


def build_catalog(seed: int, products_per_category: int = 40) -> Catalog:
    """A deterministic catalog for ``seed``: about 40 products in each of 10 categories."""
    rng = np.random.default_rng([seed, 0xCA7A106])
    products: list[dict[str, Any]] = []
    stacked: list[np.ndarray] = []
    for c, category in enumerate(CATEGORIES):
        popularity = 1.0 / np.arange(1, products_per_category + 1) ** 1.1
        popularity = rng.permutation(popularity / popularity.sum())
        stacked.append(c + np.cumsum(popularity))
        prices = category.median_price * rng.lognormal(0.0, 0.45, products_per_category)
        for k in range(products_per_category):
            products.append(_product(len(products) + 1, category, rng, float(prices[k])))
        stacked[-1][-1] = c + 1.0  # exact upper edge despite rounding
    weights = np.array([c.popularity for c in CATEGORIES])
    return Catalog(
        products=products,
        category_names=[c.name for c in CATEGORIES],
        category_weight=weights / weights.sum(),
        product_category=np.repeat(np.arange(len(CATEGORIES)), products_per_category),
        stacked_popularity=np.concatenate(stacked),
    )


def _product(number: int, category: Category, rng: np.random.Generator, raw_price: float) -> dict[str, Any]:
    brand = category.brands[int(rng.integers(len(category.brands)))]
    name = f"{ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]} {category.nouns[int(rng.integers(len(category.nouns)))]}"
    product_id = f"P{number:05d}"
    slug = re.sub(r"[^a-z0-9]+", "-", f"{brand} {name}".lower()).strip("-")
    return {
        "product_id": product_id,
        "name": name,
        "category": category.name,
        "brand": brand,
        "price": _shop_price(raw_price),
        "url": f"{SHOP_URL}/products/{slug}-{product_id.lower()}",
        "image_url": f"{IMAGE_URL}/{product_id.lower()}.jpg",
    }


def _shop_price(raw: float) -> float:
    """A price as shops write them: 4.99, 19.99, 129.00."""
    if raw < 100:
        return round(max(int(raw), 1) + 0.99, 2)
    return float(round(raw / 5) * 5)
