"""Benchmark databases built once from the simulated shop and reused across runs.

    from bench.fixtures import FIXTURE_END, shop_database
    workspace = shop_database(1_000_000, 90, 7)     # builds once (~10 min at 1M), then instant
    rt = open_runtime(workspace, database_url=sqlite_url(workspace))

Each database is a workspace folder under ``bench/out/`` (or
``TAILORMAIL_BENCH_CACHE``) named by its parameters; its window always ends at
``FIXTURE_END`` so benchmarks can use a fixed "now".  A file lock keeps two
benchmarks from building the same database at once; a half-built one is never
reused (it is built in a temporary folder and renamed when complete).

Fixtures are written by ``bench.shop_loader`` (the simulator's rows straight
into the schema, indexes after); ``build_shop_database`` keeps the slow way
through the validating bulk ingest path, which ``bench_simulate`` measures and
tests/test_bench_fixture.py compares against.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.shop_loader import LoadResult, load_shop
from tailormail.clock import to_ms
from tailormail.config import DATABASE_FILE
from tailormail.runtime import open_runtime
from tailormail.simulate.output import SimulationResult, simulate_into
from tailormail.workspace import init_workspace

FIXTURE_END = datetime(2026, 3, 2, tzinfo=UTC)
"""Where every fixture's window ends: use it as "now" when querying a fixture."""


def cache_dir() -> Path:
    """Where fixtures are kept: ``TAILORMAIL_BENCH_CACHE`` or ``bench/out``."""
    return Path(os.environ.get("TAILORMAIL_BENCH_CACHE") or Path(__file__).parent / "out")


def sqlite_url(workspace: Path) -> str:
    """The URL of a fixture's SQLite database (whatever TAILORMAIL_DATABASE_URL says)."""
    return f"sqlite:///{workspace / DATABASE_FILE}"


def shop_database(customers: int, days: int = 90, seed: int = 7) -> Path:
    """The workspace holding the simulated shop of these parameters, built if absent."""
    final = cache_dir() / f"shop-{customers}c-{days}d-seed{seed}"
    if (final / DATABASE_FILE).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f"{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then reuse
        if not (final / DATABASE_FILE).exists():
            building = final.with_name(final.name + ".building")
            shutil.rmtree(building, ignore_errors=True)
            load_shop_database(building, customers, days, seed)
            building.rename(final)
    return final


def load_shop_database(root: Path, customers: int, days: int, seed: int) -> LoadResult:
    """Write the simulated shop into a fresh workspace ``root`` the fast way, printing progress."""
    print(f"building the shop fixture {root.name} ({customers:,} customers, {days} days)", file=sys.stderr)
    started, cpu = time.perf_counter(), time.process_time()
    result = load_shop(
        root, customers=customers, days=days, seed=seed, end=FIXTURE_END, now_ms=to_ms(FIXTURE_END),
        progress=_progress_printer(customers),
    )  # fmt: skip
    print(
        f"  built in {time.perf_counter() - started:,.0f} s ({time.process_time() - cpu:,.0f} CPU-s): "
        f"{result.events:,} events; load {result.load_seconds:,.0f} s, indexes {result.index_seconds:,.0f} s, "
        f"ANALYZE {result.analyze_seconds:,.0f} s",
        file=sys.stderr,
    )
    return result


def build_shop_database(root: Path, customers: int, days: int, seed: int) -> SimulationResult:
    """Build a fresh workspace with the simulated shop into ``root`` through bulk ingest, printing progress."""
    init_workspace(root)
    runtime = open_runtime(root, database_url=sqlite_url(root))
    try:
        return simulate_into(
            runtime.store, runtime.settings, customers=customers, days=days, seed=seed,
            end=FIXTURE_END, now_ms=to_ms(FIXTURE_END), progress=_progress_printer(customers),
        )  # fmt: skip
    finally:
        runtime.close()


def _progress_printer(customers: int) -> Callable[[int], None]:
    """A progress callback printing customers done, the rate and CPU-seconds every 50,000."""
    done = 0
    started, cpu = time.perf_counter(), time.process_time()

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if done % 50_000 < n or done == customers:
            wall, used = time.perf_counter() - started, time.process_time() - cpu
            print(f"  {done:,}/{customers:,} customers in {wall:,.0f} s ({done / wall:,.0f}/s; {used:,.0f} CPU-s)",
                  file=sys.stderr, flush=True)  # fmt: skip

    return progress
