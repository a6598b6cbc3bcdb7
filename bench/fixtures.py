"""Benchmark databases built once from the simulated shop and reused across runs.

    from bench.fixtures import FIXTURE_END, shop_database
    workspace = shop_database(1_000_000, 90, 7)     # builds once (minutes), then instant
    rt = open_runtime(workspace, database_url=sqlite_url(workspace))

Each database is a workspace folder under ``bench/out/`` (or
``TAILORMAIL_BENCH_CACHE``) named by its parameters; its window always ends at
``FIXTURE_END`` so benchmarks can use a fixed "now".  A file lock keeps two
benchmarks from building the same database at once; a half-built one is never
reused (it is built in a temporary folder and renamed when complete).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

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
            build_shop_database(building, customers, days, seed)
            building.rename(final)
    return final


def build_shop_database(root: Path, customers: int, days: int, seed: int) -> SimulationResult:
    """Build a fresh workspace with the simulated shop into ``root`` (SQLite), printing progress."""
    init_workspace(root)
    runtime = open_runtime(root, database_url=sqlite_url(root))
    done = 0
    started = time.perf_counter()

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if done % 50_000 < n or done == customers:
            rate = done / (time.perf_counter() - started)
            print(f"  {done:,}/{customers:,} customers ({rate:,.0f}/s)", file=sys.stderr, flush=True)

    try:
        return simulate_into(
            runtime.store, runtime.settings, customers=customers, days=days, seed=seed,
            end=FIXTURE_END, now_ms=to_ms(FIXTURE_END), progress=progress,
        )  # fmt: skip
    finally:
        runtime.close()
