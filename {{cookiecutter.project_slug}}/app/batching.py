"""Micro-batching: concurrent ``/predict`` calls share one model run.

Each caller puts its row on a queue and waits for its own answer. One worker
task takes the rows that are waiting, up to ``max_size``, waits at most
``max_wait`` seconds for more, and runs the model once for all of them, in a
thread so the event loop keeps reading requests in the meantime. While one
batch runs, the next one gathers: under load the batches grow by themselves.
A batch of one row runs in the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

# Any model: a batch of rows in, one answer per row out, in the same order.
PredictBatch = Callable[[Sequence[Any]], Sequence[Any]]
# Called after each model run with its number of rows and, for each row, the
# seconds it waited on the queue before the run started.
BatchObserver = Callable[[int, Sequence[float]], None]


class ModelRunError(Exception):
    """The model run of a caller's batch raised; the log has the traceback."""


class BatcherStoppedError(Exception):
    """The batcher is shutting down and takes no more rows."""


@dataclass
class _Pending:
    row: Any
    answer: asyncio.Future[Any]
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    """Gather rows from concurrent callers into batches for one function."""

    def __init__(
        self,
        predict_batch: PredictBatch,
        max_size: int,
        max_wait: float = 0.0,
        observers: Sequence[BatchObserver] = (),
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be 0 or more seconds, got {max_wait}")
        self.max_size = max_size
        self.max_wait = max_wait
        self.observers = list(observers)
        self._predict_batch = predict_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def queued(self) -> int:
        """Rows waiting for a model run."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the worker; call from a running event loop (the lifespan)."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="batcher")

    async def stop(self) -> None:
        """Answer every row already queued, then end the worker."""
        if self._worker is None or self._stopping:
            return
        self._stopping = True
        # None on the queue is the stop mark: every row before it is answered.
        self._queue.put_nowait(None)
        await self._worker

    async def predict(self, row: Any) -> Any:
        """The answer for this row, computed in a batch with its neighbours."""
        if self._worker is None or self._stopping:
            raise BatcherStoppedError("the service is shutting down")
        pending = _Pending(row, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        # A caller cancelled here (its client went away) cancels only its own
        # future; the worker skips it or drops its answer.
        return await pending.answer

    async def _work(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = await self._queue.get()
                if first is None:
                    break
                batch, stopping = await self._gather(first)
                await self._run(batch)
        finally:
            # Also when the worker is cancelled: no caller is left waiting.
            self._stopping = True
            while not self._queue.empty():
                pending = self._queue.get_nowait()
                if pending is not None and not pending.answer.done():
                    pending.answer.set_exception(
                        BatcherStoppedError("the batcher stopped")
                    )

    async def _gather(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """The first row and those that follow it within max_wait; stop seen?"""
        batch = [first]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_size:
            try:
                pending = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
            if pending is None:
                return batch, True
            batch.append(pending)
        return batch, False

    async def _run(self, batch: list[_Pending]) -> None:
        batch = [pending for pending in batch if not pending.answer.done()]
        if not batch:
            return
        started = time.perf_counter()
        try:
            rows = [pending.row for pending in batch]
            if len(rows) == 1:
                # A lone row runs here, in the event loop: for a cheap model the
                # thread hand-off would cost more than the run (measured: nearly
                # half the throughput per core at one connection), and with one
                # row waiting there is little else to serve meanwhile.
                answers = self._predict_batch(rows)
            else:
                answers = await asyncio.to_thread(self._predict_batch, rows)
            if len(answers) != len(batch):
                raise ValueError(
                    f"the model returned {len(answers)} answers for {len(batch)} rows"
                )
        except asyncio.CancelledError:
            for pending in batch:
                pending.answer.cancel()
            raise
        except Exception as error:
            logger.exception("model run failed for a batch of %d rows", len(batch))
            for pending in batch:
                if not pending.answer.done():
                    pending.answer.set_exception(
                        ModelRunError(
                            f"the model failed on a batch of {len(batch)} rows"
                            f" ({type(error).__name__}); the server log has details"
                        )
                    )
        else:
            for pending, answer in zip(batch, answers, strict=True):
                if not pending.answer.done():
                    pending.answer.set_result(answer)
        waits = [started - pending.queued_at for pending in batch]
        for observe in self.observers:
            observe(len(batch), waits)
