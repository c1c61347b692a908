"""Request and response bodies of the HTTP API, around the model's own types."""

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException

from app.model import Features, Prediction

# Unknown fields are reported one by one up to this many; beyond, in one error.
MAX_UNKNOWN_FIELDS = 10
# An error answer shows the first few problems and counts the rest, so that
# its size does not grow with the body.
MAX_ERRORS_SHOWN = 10


def refuse_many_unknown_fields(model: type[BaseModel]) -> Callable[[Any], Any]:
    """A check that an object has at most a few more keys than ``model`` has fields.

    Pydantic reports each unknown field as an error of its own, so a body of a
    few bytes per key would otherwise cost a hundred thousand errors a megabyte.
    """
    most = len(model.model_fields) + MAX_UNKNOWN_FIELDS

    def check(value: Any) -> Any:
        if isinstance(value, dict) and len(value) > most:
            raise PydanticCustomError(
                "too_many_fields",
                "at most {most} fields are allowed, got {count}",
                {"most": most, "count": len(value)},
            )
        return value

    return check


# One instance, as the API takes it.
Instance = Annotated[Features, BeforeValidator(refuse_many_unknown_fields(Features))]


class BatchRequest(BaseModel):
    """Several instances to predict in one call."""

    model_config = ConfigDict(extra="forbid")

    # fail_fast: the errors of the first invalid instance, not of every one.
    instances: list[Instance] = Field(min_length=1, fail_fast=True)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, value: Any) -> Any:
        return refuse_many_unknown_fields(cls)(value)


class BatchResponse(BaseModel):
    """One prediction per instance, in the order they were sent."""

    predictions: list[Prediction]


class HealthStatus(BaseModel):
    """The answer of the health probes."""

    status: str


class ErrorMessage(BaseModel):
    """Why a request could not be answered."""

    detail: str


def first_errors(errors: Sequence[Any]) -> tuple[Sequence[Any], int]:
    """The errors an answer shows, and how many more there were."""
    return errors[:MAX_ERRORS_SHOWN], max(len(errors) - MAX_ERRORS_SHOWN, 0)


def unparseable_body(error: HTTPException) -> str:
    """Why FastAPI answered 400: a body it could not read as JSON (invalid
    UTF-8, an integer too long to parse, arrays nested too deep)."""
    reason = f": {error.__cause__}" if error.__cause__ else ""
    return f"{error.detail}{reason}"
