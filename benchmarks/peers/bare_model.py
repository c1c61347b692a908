"""The floor with the model: a bare FastAPI app that runs the ONNX file per request.

What a user's smallest FastAPI service for the same model looks like: the
floor's ``/predict`` body (``floors/bare_fastapi.py``: the same pydantic fields
and bounds as the generated service), the model run in the event loop on each
request, the label and the probabilities answered as the service answers them.
No batching, no middleware, no logging setup. Served by uvicorn at its defaults
(access log on, at INFO), in the render's virtualenv, with ``APP_MODEL_PATH``
naming the ONNX file::

    APP_MODEL_PATH=model.onnx uvicorn bare_model:app
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bare_fastapi import Features
from fastapi import FastAPI
from onnx_classifier import Classifier

FEATURES = tuple(Features.model_fields)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.classifier = Classifier(os.environ["APP_MODEL_PATH"])
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
async def predict(features: Features) -> dict[str, Any]:
    classifier: Classifier = app.state.classifier
    labels, probabilities = classifier.run([[getattr(features, n) for n in FEATURES]])
    values = probabilities[0].tolist()
    return {
        "label": labels[0],
        "probabilities": dict(zip(classifier.classes, values, strict=True)),
    }
