"""A deterministic synthetic shop (catalog, customers, behaviour) for demos, tests and benchmarks.

    from tailormail.simulate import simulate_into
    simulate_into(rt.store, rt.settings, customers=5000, days=90, seed=7, end=now, now_ms=to_ms(now))

Modules in the order the data is made: ``places`` and ``catalog`` (the world),
``customers`` (who), ``behaviour`` (what they do), ``shop`` (the whole shop as
messages), ``output`` (into a workspace or a file).
"""

from tailormail.simulate.output import SimulationResult, simulate_into, simulate_to_file
from tailormail.simulate.shop import Shop, ShopSpec

__all__ = ["Shop", "ShopSpec", "SimulationResult", "simulate_into", "simulate_to_file"]
