"""bounded_map: order, errors handed back, the deadline, and the concurrency bound."""

from __future__ import annotations

import time

import gevent
import pytest

from comfysync.greenlets import bounded_map


def test_results_in_order_and_errors_kept() -> None:
    def work(n: int) -> int:
        gevent.sleep(0.01 * (5 - n))  # finish in reverse order
        if n == 3:
            raise ValueError("three")
        return n * 10

    results = bounded_map(work, [1, 2, 3, 4], 4, timeout=5)
    assert [r.value for r in results] == [10, 20, None, 40]
    assert isinstance(results[2].error, ValueError)
    with pytest.raises(ValueError, match="three"):
        results[2].get()


@pytest.mark.parametrize("count", [1, 3])
def test_items_past_the_deadline_are_not_done(count: int) -> None:
    def work(n: int) -> int:
        gevent.sleep(10 if n == 0 else 0)
        return n

    started = time.monotonic()
    results = bounded_map(work, list(range(count)), count, timeout=0.2)
    assert time.monotonic() - started < 2
    assert not results[0].done
    assert all(r.done and r.value == n for n, r in enumerate(results) if n)


def test_at_most_size_at_once() -> None:
    running = peak = 0

    def work(_: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        gevent.sleep(0.01)
        running -= 1

    bounded_map(work, list(range(10)), 3, timeout=5)
    assert peak == 3
