"""Run a generator one step ahead in a worker thread, so decoding and face detection of the next batch
overlap the model's forward pass on the current one (both release the GIL: OpenCV, torch and
onnxruntime kernels). Items come out in the generator's order; an exception raised in the worker is
raised again, unchanged, where the consumer asks for the next item; a consumer that stops early ends
the worker at its next step."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``items`` computed in a daemon thread at most ``depth`` items ahead of the consumer."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as e:          # handed to the consumer, which raises it
            put((_DONE, e))
            return
        put((_DONE, None))

    thread = threading.Thread(target=work, name="ferkit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = q.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        close = getattr(items, "close", None)
        thread.join(timeout=5.0)
        if close is not None and not thread.is_alive():
            close()
