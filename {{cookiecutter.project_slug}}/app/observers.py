"""What the service reports as it runs, to whoever records it.

One ``Observers`` per application, in ``app.state.observers``: the request
middleware, the batcher and the routes tell it what happened, and a recorder
adds itself to the lists it wants. Each observer runs on the event loop: keep
it quick.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fastapi import Request
from starlette.types import Scope

from app.batching import BatchObserver
from app.model import Prediction

# Told of each finished HTTP request: its scope (with the matched route), its
# status and its duration in seconds.
RequestObserver = Callable[[Scope, int, float], None]
# Told of the predictions a request made, one per instance.
PredictionObserver = Callable[[Sequence[Prediction]], None]
# Told of each request turned away because the service was full: its scope.
ShedObserver = Callable[[Scope], None]


@dataclass
class Observers:
    """The observers of one application, by what they are told of."""

    requests: list[RequestObserver] = field(default_factory=list)
    batches: list[BatchObserver] = field(default_factory=list)
    predictions: list[PredictionObserver] = field(default_factory=list)
    sheds: list[ShedObserver] = field(default_factory=list)


def report_predictions(request: Request, predictions: Sequence[Prediction]) -> None:
    """Tell the application's observers what ``request`` predicted."""
    observers: Observers = request.app.state.observers
    for observe in observers.predictions:
        observe(predictions)
