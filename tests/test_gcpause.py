"""The cycle collector is paused for bulk work and back as it was afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tailormail.gcpause import collection_paused


@pytest.fixture
def collector() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("enabled_before", [True, False])
def test_paused_inside_and_restored_after(collector: None, enabled_before: bool) -> None:
    (gc.enable if enabled_before else gc.disable)()
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still runs
    assert gc.isenabled() is enabled_before


def test_restored_after_an_error(collector: None) -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_pauses_still_collect_now_and_then(collector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import tailormail.gcpause as gcpause

    now = [100.0]
    monkeypatch.setattr(gcpause.time, "monotonic", lambda: now[0])
    gc.enable()
    full_collections = gc.get_stats()[2]["collections"]
    with collection_paused():  # one thread's pause stays open while others come and go
        with collection_paused():
            now[0] += 0.5
        assert gc.get_stats()[2]["collections"] == full_collections  # within the bound: no collection
        with collection_paused():
            now[0] += gcpause.MAX_PAUSE_SECONDS
        assert gc.get_stats()[2]["collections"] == full_collections + 1  # past it: one full collection
        assert not gc.isenabled()
    assert gc.isenabled()
