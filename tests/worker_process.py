"""The worker as a bare process for tests: what `tailormail worker` runs, without the CLI's imports.

    python tests/worker_process.py WORKSPACE

Importing the whole CLI costs seconds on a busy machine; the exactly-once test
starts a worker six times, so it runs the same library calls directly.
SIGTERM stops it after the current round, as it does `tailormail worker`.
"""

from __future__ import annotations

import signal
import sys
import threading

from tailormail.runtime import open_runtime
from tailormail.worker import make_worker


def main(workspace: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime = open_runtime(workspace)
    try:
        make_worker(runtime).run_forever(stop)
    finally:
        runtime.close()


if __name__ == "__main__":
    main(sys.argv[1])
