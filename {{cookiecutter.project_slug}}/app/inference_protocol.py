"""The Open Inference Protocol (KServe v2 REST) beside the service's own API.

Serving platforms (KServe, Seldon MLServer, NVIDIA Triton) and their clients
(``tritonclient``, the ``kserve`` SDK) speak this protocol. The model takes one
tensor, ``features`` (``[N, n_features]``, FP32 or FP64), and gives the tensors
``Model.outputs`` declares, each with a first axis of N. Every answer
under ``/v2`` that is not a result is ``{"error": "..."}``, as the protocol
asks: 400 for a malformed request, 404 for an unknown model, version or path,
405 for a method the path does not take, 413 for a body over
``APP_MAX_BODY_BYTES``, 500 if the model fails, 503 before the model is loaded.

The infer routes read their body themselves, as FastAPI's docs show for a
route that parses its own: the JSON is validated once, into an
``InferenceRequest``, and the answer is written once, as JSON, by its model.
Declared as a parameter and a return type, the body would be parsed to Python
objects and then validated, and the answer validated again before it was
written, through FastAPI's dependency solving for each: a one-row request cost
nearly a third more CPU that way, in the service's own process. The OpenAPI
document describes both bodies all the same.
"""

import json
import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute

from app import DISTRIBUTION, errors, model
from app.batching import Batcher, BatcherStoppedError, ModelRunError
from app.deps import ModelRoute, current_model, is_ready, model_failure
from app.observers import report_predictions
from app.schemas import first_errors, refuse_many_unknown_fields

PREFIX = errors.PROTOCOL_PREFIX
INPUT = "features"
INPUT_DATATYPES = ("FP32", "FP64")
# The protocol's name for a model run by ONNX Runtime.
PLATFORM = "onnx_onnxv1"
# tritonclient sends this header when tensors follow the JSON as raw bytes.
BINARY_EXTENSION_HEADER = "inference-header-content-length"

# fail_fast: the errors of the first invalid parameter, not of every one.
Parameters = Annotated[dict[str, str | int | float | bool], Field(fail_fast=True)]
# Each part of where an error is gets cut short, as the whole error is (names
# and values in it come from the client).
MAX_LOCATION_TEXT = 100
# The answer repeats the request's id: a longer one is refused, so that the
# answer stays the size of the predictions.
MAX_ID_LENGTH = 1024


class ProtocolError(Exception):
    """A request the protocol answers with ``{"error": message}``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class ProtocolRoute(ModelRoute):
    """A route whose errors take the protocol's shape, and 400 for bad bodies;
    a model's route takes a key, as the service's model routes do."""

    def serves_model(self) -> bool:
        return self.path.startswith(f"{PREFIX}/models/")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_protocol_errors(request: Request) -> Response:
            try:
                if BINARY_EXTENSION_HEADER in request.headers:
                    raise ProtocolError(
                        status.HTTP_400_BAD_REQUEST,
                        "binary tensor data is not supported: send the tensors"
                        " as JSON (with tritonclient, binary_data=False)",
                    )
                return await handle(request)
            except ProtocolError as error:
                return errors.protocol_error(error.status_code, error.message)

        return handle_with_protocol_errors


router = APIRouter(
    prefix=PREFIX, tags=["inference protocol"], route_class=ProtocolRoute
)


# --- bodies -------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Why the request could not be answered."""

    error: str


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    """A tensor's name, element type and shape; -1 is a dimension of any size."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    """An input tensor; ``data`` is row-major, flat or nested like its shape."""

    model_config = ConfigDict(extra="forbid")

    name: str
    # Integers as JSON writes them: "2", 2.0 or true are refused, not read as 2.
    # At most as many dimensions as NumPy allows.
    shape: list[StrictInt] = Field(max_length=64)
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, value: Any) -> Any:
        return refuse_many_unknown_fields(cls)(value)


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: Parameters | None = None

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, value: Any) -> Any:
        return refuse_many_unknown_fields(cls)(value)


class InferenceRequest(BaseModel):
    """The tensors to run the model on, and which outputs to return."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [
                        {
                            "name": INPUT,
                            "shape": [2, 4],
                            "datatype": "FP32",
                            "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
                        }
                    ],
                }
            ]
        },
    )

    id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    parameters: Parameters | None = None
    # fail_fast: the errors of the first invalid tensor, not of every one.
    inputs: list[RequestInput] = Field(min_length=1, fail_fast=True)
    outputs: list[RequestOutput] | None = Field(default=None, fail_fast=True)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, value: Any) -> Any:
        return refuse_many_unknown_fields(cls)(value)

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs_within_model(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse more outputs than the model gives (the validation context's
        ``outputs``) before any of them is validated.

        Each output at most once: a name repeated would repeat its tensor in the
        answer, which would then grow with the request rather than the rows; and
        a megabyte of names would have pydantic build tens of thousands of
        objects, holding the event loop for seconds, only to refuse them.
        """
        gives = (info.context or {}).get("outputs")
        if gives is not None and isinstance(value, list) and len(value) > len(gives):
            raise PydanticCustomError(
                "too_many_outputs",
                "{count} outputs are asked for, but the model gives {most}:"
                " ask for each of {names} at most once",
                {"count": len(value), "most": len(gives), "names": str(list(gives))},
            )
        return value


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[str] | list[float]


class InferenceResponse(BaseModel):
    """The requested output tensors, with the request's ``id`` if it had one."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid API key (when keys are on)"},
    404: {"model": ErrorBody, "description": "No such model or version"},
    503: {
        "model": ErrorBody,
        "description": "The model is not loaded yet, or the service is at capacity",
    },
}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request is malformed"},
    413: {"description": "The body is larger than APP_MAX_BODY_BYTES"},
    **NOT_FOUND,
}


# --- server -------------------------------------------------------------------


@router.get("/health/live")
async def server_live() -> ServerLive:
    """The server is up."""
    return ServerLive(live=True)


@router.get(
    "/health/ready",
    responses={503: {"model": ServerReady, "description": "Model not loaded"}},
)
async def server_ready(request: Request, response: Response) -> ServerReady:
    """The model is loaded and can serve inference requests."""
    if not is_ready(request):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return ServerReady(ready=False)
    return ServerReady(ready=True)


@router.get("")
# The protocol's OpenAPI document spells the path with a trailing slash.
@router.get("/", include_in_schema=False)
async def server_metadata(request: Request) -> ServerMetadata:
    """The server's name (its distribution's) and version."""
    return ServerMetadata(name=DISTRIBUTION, version=request.app.version, extensions=[])


# --- model --------------------------------------------------------------------


@router.get("/models/{name}", responses=NOT_FOUND)
async def model_metadata(name: str, request: Request) -> ModelMetadata:
    """The model's inputs and outputs."""
    return _metadata(_served_model(request, name))


@router.get("/models/{name}/versions/{version}", responses=NOT_FOUND)
async def model_version_metadata(
    name: str, version: str, request: Request
) -> ModelMetadata:
    """The inputs and outputs of one version of the model."""
    return _metadata(_served_model(request, name, version))


@router.get("/models/{name}/ready", responses=NOT_FOUND)
async def model_ready(name: str, request: Request) -> ModelReady:
    """The model is loaded and can serve inference requests."""
    return ModelReady(name=_served_model(request, name).name, ready=True)


@router.get("/models/{name}/versions/{version}/ready", responses=NOT_FOUND)
async def model_version_ready(name: str, version: str, request: Request) -> ModelReady:
    """This version of the model is loaded and can serve inference requests."""
    return ModelReady(name=_served_model(request, name, version).name, ready=True)


def _read_by_the_route(*path_parameters: str) -> dict[str, Any]:
    """The OpenAPI operation of an infer route: the path's parts and the body,
    which the route reads itself, as FastAPI would declare them.

    Declared as the endpoint's parameters, each part of the path would be
    validated, a string into a string, through FastAPI's dependency solving on
    every request: about a twentieth of the cost of a one-row request in the
    service's own process. ``document_bodies`` adds the body's schema.
    """
    return {
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "title": name.title()},
            }
            for name in path_parameters
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/InferenceRequest"}
                }
            },
        },
    }


@router.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses=BAD_REQUEST,
    openapi_extra=_read_by_the_route("name"),
)
async def infer(request: Request) -> Response:
    """Run the model on a batch of instances."""
    path = request.path_params
    return await _infer(request, _served_model(request, path["name"]))


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=BAD_REQUEST,
    openapi_extra=_read_by_the_route("name", "version"),
)
async def infer_version(request: Request) -> Response:
    """Run one version of the model on a batch of instances."""
    path = request.path_params
    return await _infer(request, _served_model(request, path["name"], path["version"]))


def document_bodies(app: FastAPI) -> None:
    """Add the schema of the body the infer routes read themselves (and the
    schemas it refers to) to the app's OpenAPI document, as FastAPI adds those
    of the bodies it reads."""
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build_openapi()  # which keeps it as app.openapi_schema
            body = TypeAdapter(InferenceRequest).json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(body.pop("$defs", {}), InferenceRequest=body)
            return schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def routes_busiest_first() -> list[BaseRoute]:
    """The protocol's routes, its infer routes first: a request is matched
    against each route in turn, and infer is the one called under load."""
    return sorted(router.routes, key=lambda route: not _is_infer(route))


def _is_infer(route: BaseRoute) -> bool:
    return isinstance(route, APIRoute) and route.path.endswith("/infer")


# --- helpers ------------------------------------------------------------------


def _describe(failures: Any, within: tuple[str, ...] = ()) -> str:
    """Pydantic's errors as one line: where each is (inside ``within``), and
    what is wrong there."""
    shown, more = first_errors(failures)
    described = "; ".join(
        ".".join(_shorten(str(part)) for part in (*within, *error["loc"]))
        + f": {error['msg']}"
        + (f" ({reason})" if (reason := _reason(error)) else "")
        for error in shown
    )
    if more:
        described += f"; {more} more errors"
    return described


def _shorten(part: str) -> str:
    return part[:MAX_LOCATION_TEXT] + "..." if len(part) > MAX_LOCATION_TEXT else part


def _reason(error: Any) -> str:
    """The cause pydantic keeps beside an error's message, unless it says it."""
    reason = str(error.get("ctx", {}).get("error", ""))
    return "" if reason in error["msg"] else reason


def _served_model(
    request: Request, name: str, version: str | None = None
) -> model.Model:
    loaded = current_model(request)
    if name != loaded.name:
        raise ProtocolError(
            status.HTTP_404_NOT_FOUND,
            f"unknown model {name!r}: this server serves {loaded.name!r}",
        )
    if version is not None and version != loaded.version:
        raise ProtocolError(
            status.HTTP_404_NOT_FOUND,
            f"unknown version {version!r} of model {name!r}:"
            f" this server serves version {loaded.version!r}",
        )
    return loaded


def _metadata(loaded: model.Model) -> ModelMetadata:
    n_features = len(loaded.feature_names)
    return ModelMetadata(
        name=loaded.name,
        versions=[loaded.version],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT, datatype="FP32", shape=[-1, n_features])],
        outputs=[
            TensorMetadata(
                name=name, datatype=tensor.datatype, shape=[-1, *tensor.shape]
            )
            for name, tensor in loaded.outputs.items()
        ],
    )


async def _read(request: Request, loaded: model.Model) -> InferenceRequest:
    """The request's body, parsed as JSON whatever Content-Type it declares
    (tritonclient sends none, and ``curl -d`` declares a form), then validated.

    Parsed by the json module rather than by pydantic's own JSON parser, which
    is a few microseconds quicker on a one-row body but several times slower to
    refuse some hostile ones, such as a megabyte of empty tensors.
    """
    try:
        data = json.loads(await request.body())
    except ClientDisconnect as error:
        raise _bad_request("the client left before its body was complete") from error
    except (ValueError, RecursionError) as error:
        # Not JSON, not UTF-8, an integer too long to read, arrays nested too deep.
        raise _bad_request(f"body: Invalid JSON: {error}") from error
    try:
        return InferenceRequest.model_validate(
            data, context={"outputs": loaded.outputs}
        )
    except ValidationError as error:
        raise _bad_request(_describe(error.errors(), within=("body",))) from error


async def _infer(request: Request, loaded: model.Model) -> Response:
    body = await _read(request, loaded)
    outputs = loaded.outputs
    wanted = [output.name for output in body.outputs or ()] or list(outputs)
    unknown = [name for name in wanted if name not in outputs]
    if unknown:
        raise _bad_request(
            f"unknown outputs {unknown[: len(outputs) + 1]}: the model gives"
            f" {list(outputs)}"
        )
    # Each output at most once: a name repeated would repeat its tensor in the
    # answer, which would then grow with the request rather than the rows.
    repeated = [name for index, name in enumerate(wanted) if name in wanted[:index]]
    if repeated:
        raise _bad_request(
            f"output {repeated[0]!r} is asked for more than once: ask for each of"
            f" {list(outputs)} at most once"
        )
    if len(body.inputs) != 1 or body.inputs[0].name != INPUT:
        names = [tensor.name for tensor in body.inputs]
        raise _bad_request(f"inputs {names}: the model takes one input, {INPUT!r}")
    limit: int = request.app.state.settings.max_rows_per_request
    rows = _rows(body.inputs[0], loaded.feature_names, limit)
    batch = [
        _features(loaded.feature_names, row, index) for index, row in enumerate(rows)
    ]
    predictions = await _predict(request, loaded, batch)
    report_predictions(request, predictions)
    data = loaded.tensors(predictions)
    answer = InferenceResponse(
        model_name=loaded.name,
        model_version=loaded.version,
        id=body.id,
        outputs=[
            ResponseOutput(
                name=name,
                shape=[len(predictions), *outputs[name].shape],
                datatype=outputs[name].datatype,
                data=data[name],
            )
            for name in wanted
        ],
    )
    return Response(
        answer.model_dump_json(exclude_none=True), media_type="application/json"
    )


async def _predict(
    request: Request, loaded: model.Model, batch: list[model.Features]
) -> list[model.Prediction]:
    """Predict through the batcher, as /predict does, so that concurrent calls
    share model runs; a request of more rows than a run takes runs alone.

    One row waits for its answer as /predict's does: gathering the answers of
    one row would cost a twentieth of a one-row request, in the service's own
    process, for nothing.
    """
    batcher: Batcher | None = request.app.state.batcher
    if batcher is None or len(batch) > batcher.max_size:
        return loaded.predict_batch(batch)
    try:
        if len(batch) == 1:
            predictions: list[model.Prediction] = [await batcher.predict(batch[0])]
        else:
            predictions = await batcher.predict_many(batch)
    except (ModelRunError, BatcherStoppedError) as error:
        raise model_failure(error) from error
    return predictions


def _bad_request(message: str) -> ProtocolError:
    return ProtocolError(status.HTTP_400_BAD_REQUEST, message)


def _rows(
    tensor: RequestInput, feature_names: tuple[str, ...], limit: int
) -> list[list[float]]:
    """The tensor's rows, checked against its datatype, shape and data; at most
    ``limit`` of them, refused by the shape before any value is read."""
    n_features = len(feature_names)
    if tensor.datatype not in INPUT_DATATYPES:
        raise _bad_request(
            f"input {tensor.name!r} has datatype {tensor.datatype!r},"
            f" expected one of {list(INPUT_DATATYPES)}"
        )
    if len(tensor.shape) != 2 or tensor.shape[0] < 1 or tensor.shape[1] != n_features:
        raise _bad_request(
            f"input {tensor.name!r} has shape {tensor.shape},"
            f" expected [N, {n_features}] with N >= 1:"
            f" one row of {n_features} features ({', '.join(feature_names)})"
            " per instance"
        )
    n_rows = tensor.shape[0]
    if n_rows > limit:
        raise _bad_request(
            f"at most {limit} instances are allowed per request, got {n_rows}"
        )
    data = tensor.data
    if all(isinstance(row, list) for row in data):  # nested like the shape
        if len(data) != n_rows or any(len(row) != n_features for row in data):
            raise _bad_request(
                f"input {tensor.name!r}: nested data must be {n_rows} rows"
                f" of {n_features} values, as its shape {tensor.shape} says"
            )
        values = [value for row in data for value in row]
    else:
        values = data
        if len(values) != n_rows * n_features:
            raise _bad_request(
                f"input {tensor.name!r} has {len(values)} values, but its shape"
                f" {tensor.shape} needs {n_rows * n_features}"
            )
    numbers = [_number(value, tensor.name, index) for index, value in enumerate(values)]
    return [numbers[i : i + n_features] for i in range(0, len(numbers), n_features)]


def _number(value: object, tensor: str, index: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_request(
            f"input {tensor!r}: value {index} is {value!r}, not a number"
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _bad_request(
            f"input {tensor!r}: value {index} is {value!r}; values must be finite"
        )
    return number


def _features(
    feature_names: tuple[str, ...], row: list[float], index: int
) -> model.Features:
    """One instance, checked like a body of /predict."""
    try:
        return model.Features.model_validate(dict(zip(feature_names, row, strict=True)))
    except ValidationError as error:
        raise _bad_request(f"instance {index}: {_describe(error.errors())}") from error
