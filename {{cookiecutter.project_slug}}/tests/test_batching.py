"""The batcher, driven step by step: a gate holds the model run until the test
has queued what it wants, so no test depends on timing.

Rows queued in one turn of the event loop share the next run. The gated batchers
are made with ``loop_run_seconds=0``, so that every run happens in a thread:
that is the run the gate holds. (A run in the event loop would block it.)"""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import httpx2
import pytest

from app.batching import Batcher, BatcherStoppedError, ModelRunError
from app.config import Settings
from app.main import create_app
from app.model import Features, Model
from tests.conftest import FEATURE_NAMES, FIRST, LAST, MODEL, approximately

TIMEOUT = 10  # seconds; only reached when a test is about to fail


class GatedModel:
    """Multiplies each row by 10; holds its first run until ``gate`` is set."""

    def __init__(self, poison: int | None = None) -> None:
        self.runs: list[list[int]] = []
        self.running = threading.Event()
        self.gate = threading.Event()
        self.poison = poison

    def __call__(self, rows: Sequence[int]) -> list[int]:
        self.runs.append(list(rows))
        self.running.set()
        if not self.gate.wait(TIMEOUT):
            raise TimeoutError("the test never opened the gate")
        if self.poison in rows:
            raise ValueError("poisoned row")
        return [row * 10 for row in rows]

    async def wait_running(self) -> None:
        assert await asyncio.to_thread(self.running.wait, TIMEOUT)


def gated_batcher(model: GatedModel, max_size: int, max_wait: float = 0.0) -> Batcher:
    """A batcher whose every run happens in a thread, where the gate can hold it."""
    return Batcher(model, max_size=max_size, max_wait=max_wait, loop_run_seconds=0)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), TIMEOUT))


async def queued(batcher: Batcher, rows: int) -> None:
    # The queue has no event for its size: look again at each turn of the loop.
    while batcher.queued < rows:  # noqa: ASYNC110
        await asyncio.sleep(0)


async def outcome(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except Exception as error:
        return type(error).__name__


def test_batcher_runs_waiting_rows_together_in_order() -> None:
    async def scenario() -> None:
        model = GatedModel()
        batcher = gated_batcher(model, max_size=100)
        batcher.start()
        first = [asyncio.create_task(batcher.predict(row)) for row in (0, 1)]
        await model.wait_running()
        rest = [asyncio.create_task(batcher.predict(row)) for row in range(2, 50)]
        await queued(batcher, 48)
        model.gate.set()
        assert await asyncio.gather(*first, *rest) == [row * 10 for row in range(50)]
        assert model.runs == [[0, 1], list(range(2, 50))]
        await batcher.stop()

    run(scenario)


def test_batcher_runs_at_most_max_size_rows() -> None:
    async def scenario() -> None:
        model = GatedModel()
        model.gate.set()
        batcher = gated_batcher(model, max_size=4)
        batcher.start()
        answers = await asyncio.gather(*(batcher.predict(row) for row in range(10)))
        assert answers == [row * 10 for row in range(10)]
        assert [row for run in model.runs for row in run] == list(range(10))
        assert max(len(run) for run in model.runs) <= 4
        await batcher.stop()

    run(scenario)


def test_batcher_failing_run_fails_exactly_its_callers() -> None:
    async def scenario() -> None:
        model = GatedModel(poison=2)
        batcher = gated_batcher(model, max_size=100)
        batcher.start()
        first = [asyncio.create_task(outcome(batcher.predict(r))) for r in (0, 1)]
        await model.wait_running()
        failing = [asyncio.create_task(outcome(batcher.predict(r))) for r in (2, 3)]
        await queued(batcher, 2)
        model.gate.set()
        assert await asyncio.gather(*first, *failing) == [
            0,
            10,
            "ModelRunError",
            "ModelRunError",
        ]
        # The worker lives on: the next caller is answered.
        assert await batcher.predict(4) == 40
        assert model.runs == [[0, 1], [2, 3], [4]]
        await batcher.stop()

    run(scenario)


def test_batcher_failure_names_the_batch() -> None:
    async def scenario() -> None:
        model = GatedModel(poison=7)
        model.gate.set()
        batcher = gated_batcher(model, max_size=8)
        batcher.start()
        with pytest.raises(ModelRunError, match=r"batch of 1 rows \(ValueError\)"):
            await batcher.predict(7)
        await batcher.stop()

    run(scenario)


def test_batcher_skips_a_caller_cancelled_while_queued() -> None:
    async def scenario() -> None:
        model = GatedModel()
        batcher = gated_batcher(model, max_size=100)
        batcher.start()
        first = [asyncio.create_task(batcher.predict(row)) for row in (0, 1)]
        await model.wait_running()
        gone = asyncio.create_task(batcher.predict(2))
        kept = asyncio.create_task(batcher.predict(3))
        await queued(batcher, 2)
        gone.cancel()
        model.gate.set()
        assert list(await asyncio.gather(*first, kept)) == [0, 10, 30]
        assert gone.cancelled()
        assert model.runs == [[0, 1], [3]]
        await batcher.stop()

    run(scenario)


def test_batcher_answers_the_rest_of_a_batch_whose_caller_left() -> None:
    async def scenario() -> None:
        model = GatedModel()
        batcher = gated_batcher(model, max_size=100)
        batcher.start()
        # Queued in the same turn of the loop, so they share the first run.
        gone = asyncio.create_task(batcher.predict(1))
        kept = asyncio.create_task(batcher.predict(2))
        await model.wait_running()
        gone.cancel()
        model.gate.set()
        assert await kept == 20
        assert gone.cancelled()
        assert model.runs == [[1, 2]]
        assert await batcher.predict(3) == 30
        await batcher.stop()

    run(scenario)


def test_batcher_stop_answers_every_queued_row_then_refuses() -> None:
    async def scenario() -> None:
        model = GatedModel()
        batcher = gated_batcher(model, max_size=2)
        batcher.start()
        calls = [asyncio.create_task(batcher.predict(row)) for row in range(7)]
        await model.wait_running()
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0)
        with pytest.raises(BatcherStoppedError):
            await batcher.predict(99)
        model.gate.set()
        await stopping
        assert await asyncio.gather(*calls) == [row * 10 for row in range(7)]
        assert [row for run in model.runs for row in run] == list(range(7))

    run(scenario)


def test_batcher_waits_up_to_max_wait_for_more_rows() -> None:
    async def scenario() -> None:
        model = GatedModel()
        model.gate.set()
        # A wait far longer than the test: the second row must join the first.
        batcher = gated_batcher(model, max_size=2, max_wait=TIMEOUT * 10)
        batcher.start()
        first = asyncio.create_task(batcher.predict(1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        second = asyncio.create_task(batcher.predict(2))
        assert list(await asyncio.gather(first, second)) == [10, 20]
        assert model.runs == [[1, 2]]
        await batcher.stop()

    run(scenario)


class WhereModel:
    """Multiplies each row by 10 and notes where each run happened. A run with
    a row in ``busy`` keeps the CPU busy for 20 ms; one with a row in
    ``waiting`` sleeps for 20 ms, as a thread waiting for the interpreter does."""

    def __init__(self, busy: Sequence[int] = (), waiting: Sequence[int] = ()) -> None:
        self.where: list[str] = []
        self.busy = busy
        self.waiting = waiting
        self.loop_thread = threading.get_ident()

    def __call__(self, rows: Sequence[int]) -> list[int]:
        in_loop = threading.get_ident() == self.loop_thread
        self.where.append("loop" if in_loop else "thread")
        if any(row in self.busy for row in rows):
            started = time.thread_time()
            while time.thread_time() - started < 0.02:
                pass
        if any(row in self.waiting for row in rows):
            time.sleep(0.02)
        return [row * 10 for row in rows]


def test_batcher_runs_a_quick_model_in_the_event_loop() -> None:
    async def scenario() -> None:
        model = WhereModel()
        # A bound no run of this model reaches, however busy the machine.
        batcher = Batcher(model, max_size=100, loop_run_seconds=1.0)
        batcher.start()
        calls = [batcher.predict(row) for row in range(50)]
        assert await asyncio.gather(*calls) == [row * 10 for row in range(50)]
        assert await batcher.predict(50) == 500
        assert model.where == ["loop", "loop"]
        await batcher.stop()

    run(scenario)


def test_batcher_runs_in_a_thread_after_a_run_that_held_the_loop() -> None:
    async def scenario() -> None:
        model = WhereModel(busy=[1], waiting=[2, 3])
        batcher = Batcher(model, max_size=100, loop_run_seconds=0.01)
        batcher.start()
        for row in range(5):  # one at a time: five runs
            assert await batcher.predict(row) == row * 10
        # Row 1 held the loop, so row 2 ran in a thread. There it only waited,
        # which holds nothing, so row 3 ran in the loop, which it held.
        assert model.where == ["loop", "loop", "thread", "loop", "thread"]
        await batcher.stop()

    run(scenario)


@pytest.mark.parametrize(
    ("max_size", "max_wait", "message"),
    [(0, 0.0, "max_size must be at least 1, got 0"), (2, -1.0, "got -1.0")],
)
def test_batcher_rejects_bad_limits(
    max_size: int, max_wait: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Batcher(GatedModel(), max_size=max_size, max_wait=max_wait)


def test_batcher_predict_many_gives_each_caller_its_rows_in_order() -> None:
    async def scenario() -> None:
        model = GatedModel()
        model.gate.set()
        batcher = gated_batcher(model, max_size=8)
        batcher.start()
        calls = [list(range(start, start + 5)) for start in range(0, 50, 5)]
        answers = await asyncio.gather(*(batcher.predict_many(c) for c in calls))
        assert answers == [[row * 10 for row in call] for call in calls]
        # The calls' rows shared runs of at most max_size rows.
        assert len(model.runs) < len(calls)
        assert max(len(run) for run in model.runs) <= 8
        await batcher.stop()

    run(scenario)


def test_batcher_predict_many_fails_when_a_run_of_its_rows_fails() -> None:
    async def scenario() -> None:
        model = GatedModel(poison=3)
        model.gate.set()
        batcher = gated_batcher(model, max_size=100)
        batcher.start()
        assert await outcome(batcher.predict_many([2, 3])) == "ModelRunError"
        assert await batcher.predict_many([4, 5]) == [40, 50]
        await batcher.stop()

    run(scenario)


def where_runs_happen(in_flight: int, callers: int) -> set[str]:
    """The threads a slow model's runs happened in, with this many requests in
    flight and this many callers waiting for each run."""
    threads: set[str] = set()

    def slow_model(rows: Sequence[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        return list(rows)

    async def scenario() -> None:
        # Every run counts as slow: only the requests in flight decide.
        batcher = Batcher(
            slow_model, max_size=64, loop_run_seconds=0, in_flight=lambda: in_flight
        )
        batcher.start()
        for _ in range(3):
            await asyncio.gather(*(batcher.predict(row) for row in range(callers)))
        await batcher.stop()

    run(scenario)
    return threads


def test_batcher_runs_a_slow_model_in_the_loop_for_a_lone_request() -> None:
    main = threading.current_thread().name
    assert where_runs_happen(in_flight=1, callers=1) == {main}


def test_batcher_hands_a_slow_run_to_a_thread_unless_its_request_is_alone() -> None:
    main = threading.current_thread().name
    assert main not in where_runs_happen(in_flight=2, callers=1)
    assert main not in where_runs_happen(in_flight=5, callers=4)
    # All the requests in flight, but several: their clients' next requests
    # need the loop to be read.
    assert main not in where_runs_happen(in_flight=4, callers=4)


# -- the service with batching on ---------------------------------------------


def distinct_rows(count: int) -> list[dict[str, float]]:
    """Rows spread evenly from the first example row to the last."""
    first, last = FIRST.features, LAST.features
    return [
        {
            name: first[name] + (last[name] - first[name]) * i / (count - 1)
            for name in FEATURE_NAMES
        }
        for i in range(count)
    ]


async def post_all(settings: Settings, bodies: Sequence[object]) -> Any:
    """POST every body to /predict at once, with the app's lifespan around it.

    Returns the responses and the rows of each model run.
    """
    app = create_app(settings)
    runs: list[int] = []
    app.state.observers.batches.append(lambda rows, waits: runs.append(rows))
    async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as c:
            answers = await asyncio.gather(
                *(c.post("/predict", json=b) for b in bodies)
            )
    return answers, runs


@pytest.fixture
def batched() -> Settings:
    # Room for every caller of these tests at once.
    return Settings(_env_file=None, max_rows_per_run=256, max_model_requests=256)


def test_predict_batched_gives_each_of_200_callers_its_own_answer(
    batched: Settings,
) -> None:
    rows = distinct_rows(200)
    unbatched = Settings(_env_file=None, max_rows_per_run=1)
    expected, no_runs = asyncio.run(post_all(unbatched, rows))
    answers, runs = asyncio.run(post_all(batched, rows))
    assert [r.status_code for r in answers] == [200] * 200
    # A model run of many rows may differ from a run of one in the last digits.
    for answer, alone in zip(answers, expected, strict=True):
        assert answer.json() == approximately(alone.json())
    # The answers differ, so one given to the wrong caller shows.
    assert len({r.text for r in answers}) > 1
    # Every row ran once, and the 200 calls, made in one turn of the event
    # loop, shared model runs.
    assert no_runs == []
    assert sum(runs) == 200
    assert max(runs) > 1


def test_predict_batched_validates_each_request_before_it_joins(
    batched: Settings,
) -> None:
    bad = {**FIRST.features, FEATURE_NAMES[-1]: "x"}
    answers, runs = asyncio.run(
        post_all(batched, [FIRST.features, bad, FIRST.features])
    )
    assert [r.status_code for r in answers] == [200, 422, 200]
    assert answers[1].json()["detail"][0]["loc"] == ["body", FEATURE_NAMES[-1]]
    assert sum(runs) == 2


def test_predict_batched_model_error_is_a_clear_500(
    batched: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Model, batch: Sequence[Features]) -> list[Any]:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Model, "predict_batch", broken)
    answers, runs = asyncio.run(post_all(batched, [FIRST.features, FIRST.features]))
    assert [r.status_code for r in answers] == [500, 500]
    assert sum(runs) == 2
    detail = answers[0].json()["detail"]
    assert detail.startswith("Prediction failed: the model failed on a batch of")
    assert "(RuntimeError)" in detail


def v2_body(row: dict[str, float]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "features",
                "shape": [1, len(row)],
                "datatype": "FP64",
                "data": list(row.values()),
            }
        ]
    }


async def infer_all(settings: Settings, bodies: Sequence[object]) -> Any:
    """POST every body to /v2's infer at once; the responses and the run sizes."""
    app = create_app(settings)
    runs: list[int] = []
    app.state.observers.batches.append(lambda rows, waits: runs.append(rows))
    url = f"/v2/models/{MODEL.name}/infer"
    async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as c:
            answers = await asyncio.gather(*(c.post(url, json=b) for b in bodies))
    return answers, runs


def test_infer_batched_gives_each_of_100_callers_its_own_rows(
    batched: Settings,
) -> None:
    rows = distinct_rows(100)
    unbatched = Settings(_env_file=None, max_rows_per_run=1)
    expected, no_runs = asyncio.run(infer_all(unbatched, [v2_body(r) for r in rows]))
    answers, runs = asyncio.run(infer_all(batched, [v2_body(r) for r in rows]))
    assert [r.status_code for r in answers] == [200] * 100
    for answer, alone in zip(answers, expected, strict=True):
        assert answer.json() == approximately(alone.json())
    assert len({r.text for r in answers}) > 1
    # Every row ran once, through the batcher, in runs shared by the callers.
    assert no_runs == []
    assert sum(runs) == 100
    assert len(runs) < 100


def test_infer_of_more_rows_than_a_run_takes_runs_alone() -> None:
    settings = Settings(_env_file=None, max_rows_per_run=4)
    rows = distinct_rows(6)
    body = {
        "inputs": [
            {
                "name": "features",
                "shape": [6, len(FEATURE_NAMES)],
                "datatype": "FP64",
                "data": [list(row.values()) for row in rows],
            }
        ]
    }
    (answer,), runs = asyncio.run(infer_all(settings, [body]))
    assert answer.status_code == 200, answer.text
    assert runs == []  # not through the batcher
