"""Run every benchmark module (bench/bench_*.py), or the ones named on the command line.

python -m bench                 # all
python -m bench ingest http     # bench_ingest.py and bench_http.py only
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from bench.machine import describe


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv or n in argv]
    print(describe())
    for name in names:
        print(f"\n=== {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
