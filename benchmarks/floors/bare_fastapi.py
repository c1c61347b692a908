"""The floor: a bare FastAPI app that validates the Iris body and returns a constant.

What a user's smallest app for the same API looks like: the same pydantic body
and bounds as the generated service, no model, no middleware, no logging setup.
Its declared return type puts FastAPI on its fast path (pydantic writes the JSON
bytes); returning an undeclared dict would make this floor slower, not harder.
The benchmark serves it with uvicorn's defaults (access log on, at INFO) and
again with ``--no-access-log``.
"""

from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

Centimetres = Annotated[float, Field(gt=0, le=100, strict=True, allow_inf_nan=False)]


class Features(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sepal_length: Centimetres
    sepal_width: Centimetres
    petal_length: Centimetres
    petal_width: Centimetres


PREDICTION: dict[str, object] = {
    "label": "setosa",
    "probabilities": {"setosa": 0.98, "versicolor": 0.02, "virginica": 0.0},
}

app = FastAPI()


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
async def predict(features: Features) -> dict[str, object]:
    return PREDICTION
