"""Micro-batching: concurrent ``/predict`` calls share one model run.

Each caller adds its row to the queue and waits for its own answer. One worker
task takes the rows that are waiting, up to ``max_size``, waits at most
``max_wait`` seconds for more, and runs the model once for all of them. Rows
that come in while a batch runs make up the next one: under load the batches
grow by themselves.

A run that is expected to be quick happens in the event loop; a slow one goes
to a thread, so the event loop keeps reading requests in the meantime. What to
expect is what the model's previous run took (see ``LOOP_RUN_SECONDS``). A slow
run stays in the event loop all the same when it serves the only request in
flight: a thread would only add two hand-overs to it. A run for several
requests goes to a thread even when they are all the service is serving:
their clients, and others, send their next requests meanwhile, which only
the event loop reads (measured with 64 clients on 2 cores and a model of
about 0.14 ms a row: 2,775 and 3,089 requests a second against 2,262 to 2,370
with such runs kept in the loop).

With a tracer (tracing on), each run has a span: see ``Batcher._traced``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

from app import tracing

logger = logging.getLogger(__name__)

# Any model: a batch of rows in, one answer per row out, in the same order.
PredictBatch = Callable[[Sequence[Any]], Sequence[Any]]
# Called after each model run with its number of rows and, for each row, the
# seconds it waited on the queue before the run started.
BatchObserver = Callable[[int, Sequence[float]], None]

# A run whose predecessor took less than this happens in the event loop, which
# it holds for that long: handing a run to a thread and its answers back costs
# the event loop more than a quick model's whole run. The sample model runs 64
# rows in 0.3 to 0.7 ms; running them in the loop served 1.18x the requests per
# second of handing every run to a thread. A run that took longer is worth a
# thread, if another request needs the loop.
LOOP_RUN_SECONDS = 0.002
_UNTRACED: AbstractContextManager[None] = nullcontext()


class ModelRunError(Exception):
    """The model run of a caller's batch raised; the log has the traceback."""


class BatcherStoppedError(Exception):
    """The batcher is shutting down and takes no more rows."""


@dataclass(slots=True)
class _Pending:
    row: Any
    answer: asyncio.Future[Any]
    queued_at: float
    caller: object  # the same for the rows of one call of predict_many
    span: trace.Span | None = None  # the caller's, with a tracer


class Batcher:
    """Gather rows from concurrent callers into batches for one function."""

    def __init__(
        self,
        predict_batch: PredictBatch,
        max_size: int,
        max_wait: float = 0.0,
        observers: Sequence[BatchObserver] = (),
        loop_run_seconds: float = LOOP_RUN_SECONDS,
        in_flight: Callable[[], int] | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """``in_flight`` counts the requests the service is serving, those
        waiting here included; without it, a slow run always takes a thread.
        With a ``tracer``, each model run has a span."""
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be 0 or more seconds, got {max_wait}")
        self.max_size = max_size
        self.max_wait = max_wait
        self.observers = list(observers)
        self.loop_run_seconds = loop_run_seconds
        self._in_flight = in_flight
        self._tracer = tracer
        self._predict_batch = predict_batch
        self._rows: deque[_Pending] = deque()
        self._arrived = asyncio.Event()  # set while rows may be waiting
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_run_seconds = 0.0  # what the latest model run took

    @property
    def queued(self) -> int:
        """Rows waiting for a model run."""
        return len(self._rows)

    def start(self) -> None:
        """Start the worker; call from a running event loop (the lifespan)."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="batcher")

    async def stop(self) -> None:
        """Answer every row already queued, then end the worker."""
        if self._worker is None or self._stopping:
            return
        self._stopping = True
        self._arrived.set()
        await self._worker

    async def predict(self, row: Any) -> Any:
        """The answer for this row, computed in a batch with its neighbours."""
        if self._worker is None or self._stopping:
            raise BatcherStoppedError("the service is shutting down")
        answer = asyncio.get_running_loop().create_future()
        span = None if self._tracer is None else trace.get_current_span()
        self._rows.append(_Pending(row, answer, time.perf_counter(), answer, span))
        self._arrived.set()
        # A caller cancelled here (its client went away) cancels only its own
        # future; the worker skips it or drops its answer.
        return await answer

    async def predict_many(self, rows: Sequence[Any]) -> list[Any]:
        """The answers for these rows, in order, computed in batches with
        other callers' rows (at most ``max_size`` rows a run)."""
        if self._worker is None or self._stopping:
            raise BatcherStoppedError("the service is shutting down")
        loop = asyncio.get_running_loop()
        caller, queued_at = object(), time.perf_counter()
        span = None if self._tracer is None else trace.get_current_span()
        answers = [loop.create_future() for _ in rows]
        self._rows.extend(
            _Pending(row, answer, queued_at, caller, span)
            for row, answer in zip(rows, answers, strict=True)
        )
        self._arrived.set()
        try:
            return list(await asyncio.gather(*answers))
        finally:
            # On a failure or a cancellation, the rows not yet run are not run,
            # and the errors of those that failed are taken here.
            for answer in answers:
                if answer.done() and not answer.cancelled():
                    answer.exception()
                else:
                    answer.cancel()

    async def _work(self) -> None:
        try:
            while self._rows or not self._stopping:
                await self._arrived.wait()
                self._arrived.clear()
                if self.max_wait and self._rows:
                    await self._wait_for_more()
                batch = [
                    self._rows.popleft()
                    for _ in range(min(self.max_size, len(self._rows)))
                ]
                if self._rows:
                    self._arrived.set()  # more than one batch was waiting
                if batch:
                    await self._run(batch)
        finally:
            # Also when the worker is cancelled: no caller is left waiting.
            self._stopping = True
            while self._rows:
                pending = self._rows.popleft()
                if not pending.answer.done():
                    pending.answer.set_exception(
                        BatcherStoppedError("the batcher stopped")
                    )

    async def _wait_for_more(self) -> None:
        """Wait until the batch is full, or max_wait after its first row."""
        deadline = self._rows[0].queued_at + self.max_wait
        while len(self._rows) < self.max_size and not self._stopping:
            timeout = deadline - time.perf_counter()
            if timeout <= 0:
                return
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return
            self._arrived.clear()

    async def _run(self, batch: list[_Pending]) -> None:
        batch = [pending for pending in batch if not pending.answer.done()]
        if not batch:
            return
        started = time.perf_counter()
        with self._traced(batch, started):
            await self._run_model(batch)
        waits = [started - pending.queued_at for pending in batch]
        for observe in self.observers:
            observe(len(batch), waits)

    async def _run_model(self, batch: list[_Pending]) -> None:
        try:
            rows = [pending.row for pending in batch]
            if self._last_run_seconds < self.loop_run_seconds or self._alone(batch):
                answers = self._timed_run(rows, time.perf_counter)
            else:
                answers = await asyncio.to_thread(
                    self._timed_run, rows, time.thread_time
                )
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
            trace.get_current_span().set_status(
                trace.StatusCode.ERROR, type(error).__name__
            )
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

    def _traced(
        self, batch: list[_Pending], started: float
    ) -> AbstractContextManager[object]:
        """The span of this run, current while it runs; nothing without a tracer.

        A run serves the rows of several requests, each in a trace of its own,
        and a span has one parent. The run's span is the child of the first
        request it serves whose trace is sampled, so that a run for a single
        request (the usual case under light load) sits in that request's trace
        like any other step, and it follows that trace's sampling decision. It
        links to every request it serves, and each of the others links back to
        it, so that from any of them the run is one link away. Each request's
        span records how long its rows waited for the run. When no request it
        serves is sampled, the run is not traced either.
        """
        if self._tracer is None:
            return _UNTRACED
        # Each sampled request's span: its rows in this run, and their wait.
        requests: dict[trace.Span, tuple[int, float]] = {}
        for pending in batch:
            span = pending.span
            if span is not None and span.is_recording():
                rows, waited = requests.get(span, (0, 0.0))
                requests[span] = (rows + 1, max(waited, started - pending.queued_at))
        if not requests:
            return _UNTRACED
        parent = next(iter(requests))
        run = self._tracer.start_span(
            tracing.MODEL_RUN,
            context=trace.set_span_in_context(parent, Context()),
            links=[
                trace.Link(span.get_span_context(), {tracing.BATCH_ROWS: rows})
                for span, (rows, _) in requests.items()
            ],
            attributes={
                tracing.BATCH_SIZE: len(batch),
                tracing.BATCH_REQUESTS: len(requests),
            },
        )
        for span, (_, waited) in requests.items():
            span.set_attribute(tracing.BATCH_WAIT, waited)
            if span is not parent:
                span.add_link(run.get_span_context())
        return trace.use_span(run, end_on_exit=True)

    def _alone(self, batch: list[_Pending]) -> bool:
        """Whether this batch is for the only request in flight."""
        if self._in_flight is None or self._in_flight() > 1:
            return False
        return all(pending.caller is batch[0].caller for pending in batch)

    def _timed_run(self, rows: list[Any], clock: Callable[[], float]) -> Sequence[Any]:
        # In the event loop, a run holds the loop for as long as it takes. In a
        # thread, that time would include the waits for the event loop to let go
        # of the interpreter, so the thread's CPU time is what counts there.
        started = clock()
        try:
            return self._predict_batch(rows)
        finally:
            self._last_run_seconds = clock() - started
