"""Simulating a shop into SQLite: customers/s and events/s at 1M customers / ~20M events.

Baseline, measured in the same run: generating the same shop's messages
without writing them (on a tenth of the customers, at most 50,000; the rate does
not depend on the total).  The ratio says how much of the time is writing.
Size: TAILORMAIL_BENCH_SIMULATE_CUSTOMERS (default 1,000,000), 90 days, seed 7.
The database it builds becomes the cached ``bench.fixtures.shop_database``.
"""

from __future__ import annotations

import os
import resource
import shutil
import time

from bench.fixtures import FIXTURE_END, build_shop_database, cache_dir
from tailormail.simulate.shop import Shop, ShopSpec

DAYS = 90
SEED = 7


def generation_rate(customers: int) -> tuple[float, int]:
    """Messages per second of generation alone, and the count generated."""
    shop = Shop(ShopSpec.ending(FIXTURE_END, customers=customers, days=DAYS, seed=SEED))
    start = time.perf_counter()
    count = sum(1 for _ in shop.messages())
    return count / (time.perf_counter() - start), count


def main() -> None:
    customers = int(os.environ.get("TAILORMAIL_BENCH_SIMULATE_CUSTOMERS", "1000000"))
    sample = min(50_000, max(1000, customers // 10))
    base_rate, base_count = generation_rate(sample)
    print(f"baseline: generation only, {sample:,} customers: {base_count:,} messages, {base_rate:,.0f} messages/s")
    target = cache_dir() / f"shop-{customers}c-{DAYS}d-seed{SEED}"
    building = cache_dir() / "bench-simulate.building"
    shutil.rmtree(building, ignore_errors=True)
    start = time.perf_counter()
    result = build_shop_database(building, customers, DAYS, SEED)
    seconds = time.perf_counter() - start
    rate = result.stored / seconds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"simulate into SQLite: {customers:,} customers, {result.stored:,} messages in {seconds:,.0f} s")
    print(f"  {rate:,.0f} messages/s, {customers / seconds:,.0f} customers/s; peak memory {peak:,.0f} MiB")
    print(f"  ratio to generation alone: {rate / base_rate:.2f}")
    if target.exists():
        shutil.rmtree(building)
    else:
        building.rename(target)
        print(f"  kept as the fixture {target}")
