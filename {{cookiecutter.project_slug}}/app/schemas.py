"""Request and response bodies of the HTTP API, around the model's own types."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.model import Features, Prediction


class BatchRequest(BaseModel):
    """Several instances to predict in one call."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Features] = Field(min_length=1)


class BatchResponse(BaseModel):
    """One prediction per instance, in the order they were sent."""

    predictions: list[Prediction]


class ModelInfo(BaseModel):
    """What is being served and how it was trained."""

    name: str
    version: str
    feature_names: list[str]
    classes: list[str]
    training: dict[str, Any]


class HealthStatus(BaseModel):
    """The answer of the health probes."""

    status: str


class ErrorMessage(BaseModel):
    """Why a request could not be answered."""

    detail: str
