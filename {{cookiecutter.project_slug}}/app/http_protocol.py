"""uvicorn's httptools protocol, with the limits on requests it lacks.

uvicorn's keep-alive timeout only runs between requests, httptools reads a
request head of any size, and nothing ends a body that is never finished: a
client that sends a head or a body a byte at a time would hold a connection
(and, for a body, a request slot of ``limit_concurrency``) forever, and a head
that never ends would grow memory without bound. Here:

- a connection must send a complete head within ``timeout_keep_alive`` seconds
  of opening, or of the first byte after the previous request; otherwise 408;
- the head must fit in ``h11_max_incomplete_event_size`` bytes (the limit
  uvicorn's h11 parser applies to the same thing), however its bytes arrive;
  otherwise 431;
- the whole body must arrive within ``timeout_body`` seconds of the end of the
  head; otherwise 408, or only the close if the app has begun to answer.

Each refusal closes the connection. uvicorn then tells the app the client has
gone (``receive()`` returns ``http.disconnect``), as it does when a client
leaves, so the request ends and frees its slot.

Beyond ``limit_concurrency``, uvicorn's own 503 says when to come back
(``Retry-After``), as the service's does when its model routes are full.
"""

import asyncio
from collections.abc import Iterator

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable
from uvicorn._types import Scope as UvicornScope
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)
# Seconds a client turned away is told to wait, as the app's own 503 says.
RETRY_AFTER = b"1"


async def service_unavailable_retry_later(
    scope: UvicornScope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """uvicorn's answer beyond limit_concurrency, with Retry-After."""
    body = b"Service Unavailable"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", RETRY_AFTER),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


# The empty line that ends a head. httptools (llhttp) refuses bare line feeds,
# so this is the only way a head can end.
HEAD_END = b"\r\n\r\n"


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with deadlines for request heads and bodies, and a head size limit.

    Pass ``timeout_body`` with ``functools.partial``: uvicorn builds one
    protocol per connection from its own settings only.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        timeout_body: float = 10,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or 16 * 1024
        self.timeout_body = timeout_body
        self.deadline: asyncio.TimerHandle | None = None  # for a head or a body
        # Bytes of the head being read, in the pieces before the current one;
        # None: not reading a head.
        self.head_bytes: int | None = None
        self.reading_body = False
        # The answer that refuses the request being read, once it is decided.
        self.refusal: bytes | None = None
        self.piece_bytes = 0  # length of the piece being parsed
        self.piece_body_bytes = 0  # body bytes the parser has passed on in it
        self.tail = b""  # the last bytes received, for a head end split in two

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm(self.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # the rest of a refused request
        if self.deadline is None and not self.reading_body:
            # The first byte after a request starts the next one's head, even
            # the empty lines that the parser skips without a callback.
            self._arm(self.timeout_keep_alive)
        # httptools says that a head began or ended, not where in the data. A
        # head ends only just after a HEAD_END, so fed the data a piece at a
        # time, each up to and including one, a head ends at the end of a
        # piece, and one that begins inside a piece begins after the body
        # bytes of the request before it. The head's size is then exact, for
        # any split of the bytes into reads, and requests pipelined in the same
        # read count only towards their own heads.
        for piece in self._pieces(data):
            self.piece_bytes = len(piece)
            self.piece_body_bytes = 0
            super().data_received(piece)
            if self.refusal is not None or self._handed_over():
                return
            if self.head_bytes is not None:  # still in the head
                self.head_bytes += self.piece_bytes
                if self.head_bytes > self.max_head_bytes:
                    self._refuse(HEAD_TOO_LARGE)
                    return
        self._arm_body_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # What this piece held before the head: the end of the previous body.
        self.head_bytes = -self.piece_body_bytes
        if self.deadline is None:
            self._arm(self.timeout_keep_alive)

    def _start_asgi_task(
        self, cycle: RequestResponseCycle, app: ASGI3Application
    ) -> None:
        if app is service_unavailable:  # over limit_concurrency
            app = service_unavailable_retry_later
        super()._start_asgi_task(cycle, app)

    def on_headers_complete(self) -> None:
        size = (self.head_bytes or 0) + self.piece_bytes  # it ends with the piece
        self.head_bytes = None
        self._disarm()
        if size > self.max_head_bytes:
            self._refuse(HEAD_TOO_LARGE)
            return
        super().on_headers_complete()
        self.reading_body = True

    def on_body(self, body: bytes) -> None:
        self.piece_body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refusal is not None:
            return  # a head refused as too large: the app never saw it
        self.reading_body = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.refusal is not None:
            self._refuse(self.refusal)  # if that was the last answer due
        else:
            # A pipelined request whose body is still to come may have started.
            self._arm_body_deadline()

    def _pieces(self, data: bytes) -> Iterator[bytes]:
        """``data``, cut just after each HEAD_END, one begun in the last read too."""
        start = 0
        split = (self.tail + data[:3]).find(HEAD_END)
        if split >= 0:
            start = split + len(HEAD_END) - len(self.tail)
            yield data[:start]
        while (end := data.find(HEAD_END, start)) >= 0:
            end += len(HEAD_END)
            yield data[start:end]
            start = end
        if start < len(data):
            yield data[start:]
        self.tail = (self.tail + data[-3:])[-3:]

    def _handed_over(self) -> bool:
        """Whether uvicorn has closed the connection, or given it to a WebSocket."""
        return self.transport.is_closing() or self.transport.get_protocol() is not self

    def _arm_body_deadline(self) -> None:
        # Only for the request being served: one queued behind another
        # (pipelined) cannot be read until its turn, when this runs again.
        if self.reading_body and self.deadline is None and not self.pipeline:
            self._arm(self.timeout_body)

    def _arm(self, seconds: float) -> None:
        self.deadline = self.loop.call_later(seconds, self._time_out)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _time_out(self) -> None:
        self.deadline = None
        if not self.reading_body:
            self._refuse(REQUEST_TIMEOUT)
        elif self.cycle.response_started:
            # Too late for a 408: the app has begun to answer, or has answered
            # and the client is still sending a body the app did not read.
            self.transport.close()
        else:
            self._answer_and_close(REQUEST_TIMEOUT)  # instead of the app

    def _refuse(self, response: bytes) -> None:
        """Refuse the request being read: answer and close, after the answers due.

        Requests pipelined before it are answered first; the data that follows
        it is dropped.
        """
        self._disarm()
        self.refusal = response
        if not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            self._answer_and_close(response)

    def _answer_and_close(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()
