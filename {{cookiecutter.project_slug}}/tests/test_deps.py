import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from uvicorn.server import ServerState

from app.config import Settings
from app.deps import BUSY, ModelRoute
from app.http_protocol import LimitedHttpToolsProtocol
from app.main import create_app
from tests.conftest import FIRST, MODEL, PREDICT, post_head

TIMEOUT = 10  # seconds; only reached when a test is about to fail


class Stalled:
    """Requests whose bodies do not come until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.release.wait()
        return {"type": "http.request", "body": PREDICT, "more_body": False}


async def call(app: Any, path: str, receive: Any) -> tuple[int, dict[str, str]]:
    """Call the app directly; its status and headers."""
    answer: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {
                key.decode(): value.decode() for key, value in message["headers"]
            }

    await app(scope_of(path), receive, send)
    return answer["status"], answer["headers"]


def test_a_model_request_beyond_capacity_is_503_at_once_with_retry_after() -> None:
    async def scenario() -> None:
        app = create_app(Settings(_env_file=None, max_model_requests=2), MODEL)
        stalled = Stalled()
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app):
            let_in = [
                asyncio.create_task(call(app, "/predict", stalled.receive))
                for _ in range(2)
            ]
            await asyncio.sleep(0.05)  # both have their heads read, no body
            status, headers = await call(app, "/predict", stalled.receive)
            assert (status, headers["retry-after"]) == (503, "1")
            # Probes are not model routes: they are always answered.
            status, _ = await call(app, "/health/ready", stalled.receive)
            assert status == 200
            stalled.release.set()
            assert [status for status, _ in await asyncio.gather(*let_in)] == [
                200,
                200,
            ]
            # Once they are answered, there is room again.
            status, _ = await call(app, "/predict", stalled.receive)
            assert status == 200

    asyncio.run(scenario())


def test_the_requests_let_in_are_counted_out_whatever_their_answer() -> None:
    async def scenario() -> None:
        app = create_app(Settings(_env_file=None, max_model_requests=1), MODEL)
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(
                transport=transport, base_url="http://t"
            ) as c:
                bodies: list[object] = [{}, {"instances": []}, FIRST.features]
                for body in bodies:
                    response = await c.post("/predict", json=body)
                    assert response.status_code != 503, response.text
            assert app.state.admission.in_flight == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("limit", [0, -1])
def test_the_capacity_is_at_least_one(limit: int) -> None:
    with pytest.raises(ValueError, match="max_model_requests"):
        Settings(_env_file=None, max_model_requests=limit)


def test_a_full_service_turns_model_requests_away_before_the_app() -> None:
    """What the HTTP protocol asks before it calls the app: the answer of a full
    service, in the shape of the API the request was sent to, and counted."""

    async def scenario() -> None:
        app = create_app(Settings(_env_file=None, max_model_requests=1), MODEL)
        shed: list[str] = []
        app.state.observers.sheds.append(lambda scope: shed.append(scope["path"]))
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app) as state:
            assert state is not None  # what the HTTP protocol reads
            admission = state["admission"]
            assert admission is app.state.admission
            infer = f"/v2/models/{MODEL.name}/infer"
            assert admission.turned_away(scope_of("/predict")) is None  # room
            admission.in_flight = 1
            for path in ("/health/live", "/health/ready", "/v2/health/ready"):
                assert admission.turned_away(scope_of(path)) is None, path
            answers = {}
            for path in ("/predict", "/predict/batch", "/model", infer):
                turn_away = admission.turned_away(scope_of(path))
                assert turn_away is not None, path
                answers[path] = await answered(turn_away, scope_of(path))
            admission.in_flight = 0
        busy = {"status": 503, "retry-after": "1"}
        assert answers["/predict"] == {**busy, "body": {"detail": BUSY}}
        assert answers["/model"] == {**busy, "body": {"detail": BUSY}}
        assert answers[infer] == {**busy, "body": {"error": BUSY}}
        assert shed == ["/predict", "/predict/batch", "/model", infer]

    asyncio.run(scenario())


def scope_of(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET"
        if path.startswith(("/health", "/model", "/v2/health"))
        else "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }


async def answered(app: Any, scope: dict[str, Any]) -> dict[str, Any]:
    """Call an ASGI app; its status, Retry-After and JSON body."""
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["retry-after"] = dict(message["headers"])[b"retry-after"].decode()
        else:
            answer["body"] = json.loads(message["body"])

    await app(scope, receive, send)
    return answer


def test_requests_read_together_are_let_in_only_as_far_as_there_is_room() -> None:
    """Heads read in one turn of the event loop reach their handlers, which
    count them in, only later: the protocol counts them meanwhile."""

    async def scenario() -> None:
        app = create_app(Settings(_env_file=None, max_model_requests=2), MODEL)
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app) as state:
            assert state is not None
            admission = state["admission"]
            read_together = [admission.turned_away(scope_of("/predict")) for _ in "abc"]
            assert read_together[:2] == [None, None]  # room for two
            assert read_together[2] is not None  # not for a third
            await asyncio.sleep(0)  # the loop runs the app: none was counted in
            assert admission.turned_away(scope_of("/predict")) is None

    asyncio.run(scenario())


class Transport(asyncio.Transport):
    """A connection's transport, in memory: what the server writes to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 8000)}
        return addresses.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@asynccontextmanager
async def connected_while_full(
    app: FastAPI,
) -> AsyncIterator[tuple[LimitedHttpToolsProtocol, Transport]]:
    """A connection of the HTTP protocol to ``app`` (whose limit is 1), in
    memory, while one request holds the only place."""
    async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app) as state:
        assert state is not None
        config = uvicorn.Config(app, log_config=None)
        config.load()
        protocol = LimitedHttpToolsProtocol(config, ServerState(), dict(state))
        transport = Transport()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        state["admission"].in_flight = 1  # full
        yield protocol, transport
        protocol.connection_lost(None)
        state["admission"].in_flight = 0


REFUSED = post_head("/predict", len(PREDICT)) + PREDICT


@pytest.mark.parametrize("client_reads", [True, False])
def test_the_http_protocol_answers_a_full_service_at_once_unless_the_client_lags(
    client_reads: bool,
) -> None:
    """A refusal is written as the request's head is read, in one write, when
    the client reads its answers; one whose client does not (the connection's
    buffer is full) waits for it, as the app's answers do. Either way, the
    connection then waits for the next request, among those that may be ended
    to make room for new ones."""

    async def scenario() -> None:
        app = create_app(Settings(_env_file=None, max_model_requests=1), MODEL)
        async with connected_while_full(app) as (protocol, transport):
            if not client_reads:
                protocol.pause_writing()
            protocol.data_received(REFUSED)
            if not client_reads:
                await asyncio.sleep(0.05)
                assert transport.written == b""
                protocol.resume_writing()
                await asyncio.sleep(0.05)
            answer = bytes(transport.written)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert answer.count(b"HTTP/1.1 ") == 1, answer
            assert b"\r\nretry-after: 1\r\n" in answer, answer
            assert answer.endswith(b'{"detail":"%s"}' % BUSY.encode()), answer
            assert not transport.closed
            assert protocol in LimitedHttpToolsProtocol.waiting

    asyncio.run(scenario())


def test_a_full_service_answers_head_without_a_body() -> None:
    """A model route a user declares for HEAD gets the refusal's head alone, so
    that the client reads the next answer where it begins."""

    async def describe() -> dict[str, str]:
        return {"model": "described"}

    async def scenario() -> None:
        app = create_app(Settings(_env_file=None, max_model_requests=1), MODEL)
        app.router.add_api_route(
            "/model/summary",
            describe,
            methods=["GET", "HEAD"],
            route_class_override=ModelRoute,
        )
        async with connected_while_full(app) as (protocol, transport):
            head = b"HEAD /model/summary HTTP/1.1\r\nhost: test\r\n\r\n"
            protocol.data_received(head + REFUSED)
            first, _, second = bytes(transport.written).partition(b"\r\n\r\n")
            assert first.startswith(b"HTTP/1.1 503 "), first
            assert b"\r\ncontent-length: " in first, first  # as GET would have
            assert second.startswith(b"HTTP/1.1 503 "), second
            assert second.endswith(b'{"detail":"%s"}' % BUSY.encode()), second

    asyncio.run(scenario())
