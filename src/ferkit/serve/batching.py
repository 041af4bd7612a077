"""An asyncio request batcher: concurrent requests share one forward pass.

Requests wait in a bounded queue. One worker task takes the first waiting request, then keeps
collecting until it holds ``max_batch`` requests or ``batch_wait_ms`` have passed since the first was
taken, and runs ``run_batch(items)`` in a worker thread so the event loop keeps accepting (and
refusing) connections meanwhile. A full queue refuses at once (:class:`QueueFull`, a 503 for the
caller) instead of letting latency grow without bound. The model always runs on one dedicated thread,
so uploads decoding in other threads never hold it up waiting for an executor slot. A request whose
caller stopped waiting (timeout, disconnect) before its batch started is dropped, not computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The batcher's queue holds ``queue_size`` waiting requests already."""


@dataclass
class _Pending:
    item: Any
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """Counters for /health: requests served, batches run, and the largest batch seen."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    dropped: int = 0


class Batcher:
    """Collects items from concurrent callers into batches for ``run_batch(list) -> list`` (same length).

    run_batch:     called in a worker thread with up to ``max_batch`` items; must return one result per
                   item, in order. When it raises for a batch of several, each item is run alone, so an
                   item that makes it raise fails only its own caller (with that exception).
    max_batch:     most items per call.
    batch_wait_ms: how long to wait for more items after the first one of a batch.
    queue_size:    most items waiting (not yet in a running batch); more raise QueueFull.
    """

    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], max_batch: int = 16,
                 batch_wait_ms: float = 10.0, queue_size: int = 64):
        self.run_batch = run_batch
        self.max_batch = int(max_batch)
        self.batch_wait = float(batch_wait_ms) / 1000.0
        self.queue_size = int(queue_size)
        self.stats = BatchStats()
        self.running = 0                                  # items in the batch being computed now
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._thread: ThreadPoolExecutor | None = None    # one dedicated thread runs the model

    @property
    def waiting(self) -> int:
        """Items queued and not yet taken into a batch."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def full(self) -> bool:
        """True when a new item would be refused now (lets callers refuse before costly work)."""
        return self._queue is not None and self._queue.full()

    async def start(self) -> None:
        """Create the queue and the worker task on the running loop (call from the app's lifespan)."""
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferkit-model")
        self._worker = asyncio.create_task(self._work(), name="ferkit-batcher")

    async def stop(self) -> None:
        """Stop the worker and fail whatever is still waiting."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread = None
        while self._queue is not None and not self._queue.empty():
            p = self._queue.get_nowait()
            if not p.future.done():
                p.future.set_exception(RuntimeError("The server is shutting down."))

    async def submit(self, item: Any, timeout: float | None = None) -> Any:
        """Queue ``item`` and wait for its result; QueueFull at once when full, TimeoutError after ``timeout``."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() has not been called.")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, future))
        except asyncio.QueueFull:
            raise QueueFull() from None
        # on timeout or disconnect wait_for cancels the future, so the worker skips or ignores it
        return await asyncio.wait_for(future, timeout)

    async def _collect(self) -> list[_Pending]:
        """The next batch: the first waiting item, then whatever arrives within the wait, up to max_batch."""
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.batch_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():             # no await between the check and the get
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self, items: list[Any]) -> list[Any]:
        """``run_batch`` in a worker thread; its exception is returned as the result of every item."""
        try:
            loop = asyncio.get_running_loop()
            results = list(await loop.run_in_executor(self._thread, self.run_batch, items))
        except Exception as e:  # delivered to the callers, never lost
            return [e] * len(items)
        if len(results) != len(items):
            err = RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items.")
            return [err] * len(items)
        return results

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            live = [p for p in batch if not p.future.done()]   # callers that gave up are not computed
            self.stats.dropped += len(batch) - len(live)
            if not live:
                continue
            self.running = len(live)
            try:
                results = await self._run([p.item for p in live])
                if len(live) > 1 and isinstance(results[0], Exception):
                    # one bad item must not fail its neighbours: run each alone to find which fail
                    results = [(await self._run([p.item]))[0] for p in live]
                for p, r in zip(live, results, strict=True):
                    if p.future.done():
                        continue
                    if isinstance(r, Exception):
                        p.future.set_exception(r)
                    else:
                        p.future.set_result(r)
                self.stats.requests += len(live)
                self.stats.batches += 1
                self.stats.largest_batch = max(self.stats.largest_batch, len(live))
            finally:
                self.running = 0
