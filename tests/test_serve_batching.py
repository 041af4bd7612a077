"""The request batcher on its own: batch sizes, isolation of failing items, dropped and refused requests."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ferkit.serve.batching import Batcher, QueueFull


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_batches_are_cut_at_max_batch_in_arrival_order():
    calls: list[list[int]] = []

    def run_batch(items):
        calls.append(list(items))
        return [10 * x for x in items]

    async def main():
        b = Batcher(run_batch, max_batch=2, batch_wait_ms=100, queue_size=8)
        await b.start()
        res = await asyncio.gather(*(b.submit(i, timeout=10) for i in range(5)))
        await b.stop()
        return res, b.stats

    res, stats = _run(main())
    assert res == [0, 10, 20, 30, 40]
    assert calls == [[0, 1], [2, 3], [4]]
    assert (stats.requests, stats.batches, stats.largest_batch) == (5, 3, 2)


def test_one_failing_item_fails_only_its_own_request():
    calls: list[list[str]] = []

    def run_batch(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("cannot process 'bad'")
        return [x.upper() for x in items]

    async def main():
        b = Batcher(run_batch, max_batch=4, batch_wait_ms=100, queue_size=8)
        await b.start()
        res = await asyncio.gather(*(b.submit(x, timeout=10) for x in ("a", "bad", "c")),
                                   return_exceptions=True)
        await b.stop()
        return res

    a, bad, c = _run(main())
    assert (a, c) == ("A", "C") and isinstance(bad, ValueError)
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_full_queue_refuses_and_given_up_requests_are_not_computed():
    gate = threading.Event()
    calls: list[list[int]] = []

    def run_batch(items):
        calls.append(list(items))
        gate.wait(10)
        return list(items)

    async def main():
        b = Batcher(run_batch, max_batch=1, batch_wait_ms=0, queue_size=1)
        await b.start()
        first = asyncio.create_task(b.submit(1, timeout=10))
        while b.running == 0:                        # item 1 is inside run_batch
            await asyncio.sleep(0.01)
        second = asyncio.create_task(b.submit(2, timeout=0.2))      # waits, then gives up
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await b.submit(3, timeout=10)            # the one queue slot is taken by item 2
        with pytest.raises(asyncio.TimeoutError):
            await second
        gate.set()
        assert await first == 1
        assert await b.submit(4, timeout=10) == 4
        await b.stop()
        return b.stats

    stats = _run(main())
    assert calls == [[1], [4]] and stats.dropped == 1
