"""Recommendations on a small shop whose co-occurrence structure makes the answer known."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from conftest import T0
from tailormail.clock import to_ms
from tailormail.config import EventNames
from tailormail.content.recommend import clear_cache, evaluate, products_in, recommend_for
from tailormail.content.recommend.model import (
    DAY_MS,
    Model,
    RecommendSettings,
    fit,
    histories,
    model_for,
    rank,
    stored_key,
    touches_from,
    train,
    wait_for_training,
)
from tailormail.errors import ValidationError
from tailormail.runtime import Runtime
from tailormail.store import content as content_q
from tailormail.store import products as product_q
from tailormail.store import profiles as profile_q

CATALOG = {"s1": "shoes", "s2": "shoes", "s3": "shoes", "s4": "shoes", "h1": "hats", "h2": "hats", "h3": "hats"}
CATALOG |= {"k1": "socks", "k2": "socks", "x1": "tools", "x2": "tools"}
CATALOG |= {f"y{i}": "toys" for i in range(1, 6)}


def event(user: str, name: str, product: str, days_ago: float, n: int) -> dict[str, Any]:
    when = (T0 - timedelta(days=days_ago)).isoformat()
    props: dict[str, Any] = {"product_id": product}
    if name == "purchase":  # orders carry Segment's products[] list
        props = {"products": [{"product_id": product, "quantity": 1}], "revenue": 10}
    return {
        "type": "track",
        "messageId": f"{user}-{name}-{product}-{n}",
        "userId": user,
        "event": name,
        "properties": props,
        "timestamp": when,
    }


def shop(rt: Runtime, baskets: list[tuple[str, str, list[str], float]]) -> dict[str, int]:
    """Ingest (user, event, products, days ago) rows and the catalog; return profile ids."""
    clear_cache()
    messages = [event(u, e, p, d, n) for n, (u, e, ps, d) in enumerate(baskets) for p in ps]
    rt.ingestor.ingest_raw([*messages, {"type": "identify", "messageId": "id-stranger", "userId": "stranger"}])
    with rt.store.begin() as conn:
        product_q.upsert_changed_products(
            conn,
            [
                {"product_id": p, "name": p.upper(), "category": c, "price": 9.5, "url": f"https://shop.example/{p}"}
                for p, c in CATALOG.items()
            ],
            to_ms(T0),
        )
        return profile_q.profile_ids_by_user(conn, {u for u, *_ in baskets} | {"stranger"})


SHOP = (
    [(f"pair{i}", "purchase", ["s1", "s2"], 30) for i in range(6)]
    + [(f"trio{i}", "purchase", ["s1", "s3"], 30) for i in range(3)]
    + [(f"hat{i}", "purchase", ["h1", "h2"], 30) for i in range(4)]
    + [(f"lone{i}", "purchase", ["h3"], 30) for i in range(8)]
    + [(f"sock{i}", "purchase", ["k2"], 30) for i in range(2)]
    + [(f"look{i}", "product_view", ["s4"], 30) for i in range(2)]
    + [
        ("shoe_buyer", "purchase", ["s1"], 1),
        ("sockfan", "product_view", ["k1"], 2),
        ("old_buyer", "purchase", ["h1"], 200),
        ("future", "purchase", ["h2"], -5),  # after now: must not count
    ]
)

CASES = [
    # (person, expected picks, why)
    ("shoe_buyer", ["s2", "s3", "s4", "h3"], "co-bought with s1 first, never s1 itself (bought yesterday)"),
    ("stranger", ["s1", "h3", "s2", "h1"], "no history: most popular overall (ties by id)"),
    ("sockfan", ["k2", "k1", "s1", "h3"], "nothing co-occurs with k1: popular in socks, then overall"),
    ("old_buyer", ["h2", "h3", "h1", "s1"], "h1 bought 200 days ago is outside the 90-day exclusion"),
]


def test_recommendations_follow_co_occurrence_then_category_then_popularity(runtime: Runtime) -> None:
    ids = shop(runtime, SHOP)
    with runtime.store.read() as conn:
        got = recommend_for(conn, [ids[person] for person, *_ in CASES], k=4, now_ms=to_ms(T0))
    for person, expected, why in CASES:
        assert [p.product_id for p in got[ids[person]]] == expected, why
    first = got[ids["shoe_buyer"]][0]
    assert (first.name, first.category, first.url, first.reason) == (
        "S2",
        "shoes",
        "https://shop.example/s2",
        "similar to what you viewed or bought",
    )
    assert first.as_context()["price"] == "9.50"


MESSY = [
    # ids as Segment senders write them: skus, numbers, lists with junk, unknown products
    {"product_id": "s1"},
    {"sku": "s2"},
    {"product_id": "", "sku": "s3"},
    {"products": [{"product_id": "h1"}, {"sku": "h2"}, {"name": "no id"}, "junk"]},
    {"products": {"product_id": "s4"}},  # not a list: no touch
    {"products": {"line": {"product_id": "s4"}}},  # an object of lines is not a list either
    {"product_id": "not-in-catalog"},
    {"product_id": 7},
]


def test_training_in_the_database_learns_the_model_the_event_by_event_path_learnt(runtime: Runtime) -> None:
    ids = shop(runtime, SHOP)
    names, settings = EventNames(), RecommendSettings()
    messy = [
        {
            "type": "track",
            "messageId": f"messy-{n}-{k}",
            "userId": f"messy{n % 3}",
            "event": name,
            "properties": props,
            "timestamp": (T0 - timedelta(days=3)).isoformat(),
        }
        for n, props in enumerate(MESSY)
        for k, name in enumerate(
            ["product_view", "product_view", "product_view", "add_to_cart", "purchase"][: n % 5 + 1]
        )
    ]
    runtime.ingestor.ingest_raw(messy)
    with runtime.store.begin() as conn:
        product_q.upsert_changed_products(conn, [{"product_id": "7", "name": "SEVEN", "category": "toys"}], to_ms(T0))
    now = to_ms(T0)
    with runtime.store.read() as conn:
        weights = {names.product_view: 1.0, names.add_to_cart: 2.0, names.purchase: 4.0}
        events = product_q.product_events(conn, list(weights), since_ms=now - 365 * DAY_MS, until_ms=now)
        touches = list(touches_from(events, weights, names.purchase))
        expected = fit(touches, product_q.products_by_id(conn, sorted({t.product_id for t in touches})))
        got = train(conn, now, names, settings)
    assert ids and got.items == expected.items and "7" in got.items and "not-in-catalog" not in got.items
    assert got.popularity.tolist() == pytest.approx(expected.popularity.tolist())
    np.testing.assert_allclose(got.similarity.toarray(), expected.similarity.toarray())
    assert got.category_of == expected.category_of


def test_a_purchase_made_after_the_model_was_cached_is_excluded_at_once(runtime: Runtime) -> None:
    ids = shop(runtime, SHOP)
    now = to_ms(T0)
    with runtime.store.read() as conn:
        before = recommend_for(conn, [ids["stranger"]], now_ms=now)[ids["stranger"]]
    assert before[0].product_id == "s1"
    runtime.ingestor.ingest_raw([event("stranger", "purchase", "s1", 0, 99)])
    with runtime.store.read() as conn:
        after = recommend_for(conn, [ids["stranger"]], now_ms=now + 1)[ids["stranger"]]
    assert "s1" not in [p.product_id for p in after]


@pytest.mark.parametrize(
    ("later_hours", "reused", "then_replaced", "why"),
    [
        (0.5, True, False, "same hour"),
        (23.9, True, False, "within max_age_hours (24)"),
        (24.0, True, True, "too old: it still serves while its successor trains in the background"),
        (-1.0, False, False, "a clock that went back must not see a model trained on its future: trained at once"),
    ],
)
def test_a_trained_model_is_reused_while_fresh_and_replaced_in_the_background(
    runtime: Runtime, later_hours: float, reused: bool, then_replaced: bool, why: str
) -> None:
    shop(runtime, SHOP)
    settings, names, now = RecommendSettings(), EventNames(), to_ms(T0)
    later = now + int(later_hours * 3_600_000)
    with runtime.store.read() as conn:
        first = model_for(conn, now, names, settings)
        again = model_for(conn, later, names, settings)
        assert (again is first) is reused, why
        wait_for_training()
        assert (model_for(conn, later, names, settings) is not again) is then_replaced, why


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"product_id": "a"}, ["a"]),
        ({"sku": 7}, ["7"]),
        ({"products": [{"product_id": "a"}, {"sku": "b"}, {"name": "no id"}, "junk"]}, ["a", "b"]),
        ({"category": "shoes"}, []),
    ],
)
def test_products_in_reads_segment_ecommerce_properties(properties: dict[str, Any], expected: list[str]) -> None:
    assert products_in(properties) == expected


EVAL_SHOP = (
    [(f"pair{i}", "purchase", ["x1", "x2"], 60) for i in range(5)]
    + [(f"toy{i}-{j}", "purchase", [f"y{j}"], 60) for i in range(10) for j in range(1, 6)]
    + [(f"next{i}", "purchase", ["x1"], 40) for i in range(4)]
    + [(f"next{i}", "purchase", ["x2"], 10) for i in range(4)]  # after the split: x2 follows x1
    + [("newcomer", "purchase", ["y5"], 10)]  # no history before the split: not scored
)


def test_evaluation_beats_popularity_when_co_occurrence_predicts_the_next_purchase(runtime: Runtime) -> None:
    shop(runtime, EVAL_SHOP)
    as_of = to_ms(T0 - timedelta(days=20))
    with runtime.store.read() as conn:
        result = evaluate(conn, as_of_ms=as_of, horizon_days=30, k=4)
    assert (result.buyers, result.people) == (5, 4)
    assert (result.hit_rate, result.baseline_hit_rate) == (1.0, 0.0)
    assert result.as_dict()["lift"] is None


def test_evaluation_without_events_says_what_to_do(runtime: Runtime) -> None:
    with runtime.store.read() as conn, pytest.raises(ValidationError) as caught:
        evaluate(conn)
    assert "no product events" in caught.value.message and caught.value.hint


def test_events_that_describe_products_fill_the_catalog_without_overwriting(runtime: Runtime) -> None:
    with runtime.store.begin() as conn:
        row = {"product_id": "p1", "name": "From the catalog", "price": 5}
        product_q.upsert_changed_products(conn, [row], to_ms(T0))
    runtime.ingestor.ingest_raw(
        [
            {"type": "track", "messageId": "v1", "userId": "u1", "event": "Product Viewed",
             "properties": {"product_id": "p1", "name": "From an event", "price": 7}},
            {"type": "track", "messageId": "o1", "userId": "u1", "event": "Order Completed",
             "properties": {"products": [{"sku": "p2", "name": "Socks", "price": "3.5", "category": "socks"},
                                         {"product_id": "p3"}]}},
        ]
    )  # fmt: skip
    with runtime.store.read() as conn:
        catalog = product_q.products_by_id(conn, ["p1", "p2", "p3"])
    assert catalog["p1"]["name"] == "From the catalog"
    assert (catalog["p2"]["name"], catalog["p2"]["price"], catalog["p2"]["category"]) == ("Socks", 3.5, "socks")
    assert "p3" not in catalog  # no name: not enough to show it in an email


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"product_id": 7, "name": "Mug"}, {"product_id": "7", "name": "Mug", "category": None, "price": None,
                                            "url": None, "image_url": None}),
        ({"sku": "S-1", "name": "Mug", "price": "4.5"}, {"product_id": "S-1", "name": "Mug", "category": None,
                                                         "price": 4.5, "url": None, "image_url": None}),
        ({"product_id": "", "sku": "S-2", "name": "Cup"}, {"product_id": "S-2", "name": "Cup", "category": None,
                                                           "price": None, "url": None, "image_url": None}),
        ({"product_id": 7}, None),
        ({"product_id": 7, "name": ""}, None),
        ({"name": "Mug", "sku": ""}, None),
        ({"message_key": "k", "url": "https://shop.example/p/1", "link_id": 3}, None),
    ],
)  # fmt: skip
def test_product_row(properties: dict[str, Any], expected: dict[str, Any] | None) -> None:
    from tailormail.content.recommend.catalog import product_row

    assert product_row(properties) == expected


def test_a_model_survives_its_bytes(runtime: Runtime) -> None:
    ids = shop(runtime, SHOP)
    settings, names, now = RecommendSettings(), EventNames(), to_ms(T0)
    with runtime.store.read() as conn:
        model = train(conn, now, names, settings)
        people = histories(conn, list(ids.values()), now, names, settings)
    again = Model.from_bytes(model.to_bytes())
    assert same_model(again, model) and again.index == model.index
    assert again.category_of == model.category_of and again.catalog == model.catalog
    everyone = [people[pid] for pid in ids.values()]
    assert rank(again, everyone, 4) == rank(model, everyone, 4)


def test_a_large_store_trains_its_first_model_in_the_background_and_keeps_it(runtime: Runtime) -> None:
    shop(runtime, SHOP)
    settings, names, now = RecommendSettings(inline_training_max_events=0), EventNames(), to_ms(T0)
    with runtime.store.read() as conn:
        first = model_for(conn, now, names, settings)
    assert first.items == [], "no model yet: the send must not train one inside its transaction"
    wait_for_training()
    with runtime.store.read() as conn:
        trained = model_for(conn, now, names, settings)
        kept = content_q.recommend_model(conn, stored_key(names, settings), now)
    assert trained.items and kept is not None
    # A new process (empty cache) starts from the kept model: a product sold since is not in it, though
    # training now would see it.
    clear_cache()
    runtime.ingestor.ingest_raw([event("u9", "purchase", "y5", 0, 99), event("u9", "purchase", "y1", 0, 98)])
    with runtime.store.read() as conn:
        restarted = model_for(conn, now + 1, names, settings)
        fresh = train(conn, now + 1, names, settings)
    assert same_model(restarted, trained)
    assert not same_model(fresh, trained)


def same_model(a: Model, b: Model) -> bool:
    """Same products, same similarities, same popularity."""
    if a.items != b.items or a.similarity.shape != b.similarity.shape:
        return False
    return (a.similarity != b.similarity).nnz == 0 and np.array_equal(a.popularity, b.popularity)


@pytest.mark.parametrize(
    ("saved", "asked_at", "expected", "why"),
    [
        ([5], 5, 5, "learnt up to the moment asked about"),
        ([5], 4, None, "learnt from the future of the moment asked about"),
        ([5, 9], 10, 9, "a newer model replaces the kept one"),
        ([9, 5], 10, 9, "an older model arriving late does not replace a newer one"),
    ],
)
def test_one_model_is_kept_per_key_the_newest(
    runtime: Runtime, saved: list[int], asked_at: int, expected: int | None, why: str
) -> None:
    with runtime.store.begin() as conn:
        for as_of in saved:
            content_q.save_recommend_model(conn, "k", as_of, f"model {as_of}".encode())
    with runtime.store.read() as conn:
        kept = content_q.recommend_model(conn, "k", asked_at)
    assert (None if kept is None else kept[0]) == expected, why
    assert kept is None or kept[1] == f"model {expected}".encode(), why


@pytest.mark.parametrize("people_per_snapshot", [1, 2, 5, 1000])
def test_training_in_slices_of_people_learns_the_same_model(runtime: Runtime, people_per_snapshot: int) -> None:
    # The background trainer reads a slice of profile ids per read transaction; no one is lost or counted twice.
    shop(runtime, SHOP)
    settings, names, now = RecommendSettings(), EventNames(), to_ms(T0)
    with runtime.store.read() as conn:
        whole = train(conn, now, names, settings)
    with runtime.store.engine.connect() as conn:  # a connection of its own: slices end their transactions
        sliced = train(conn, now, names, settings, people_per_snapshot=people_per_snapshot)
    assert whole.items and same_model(sliced, whole)
