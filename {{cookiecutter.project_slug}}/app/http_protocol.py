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

Slow clients hold a file descriptor each until their deadline, and a process
may open only so many (``ulimit -n``). Once they are all taken, accepting
fails: uvloop then accepts and at once closes every connection waiting to be
accepted, the newcomers with the attackers (asyncio's own loop stops accepting
for a second). So connections are kept to seven eighths of the open-file limit
(896 of 1,024; at least 64 descriptors are held back): past that, each new
connection ends the one that has waited longest for its client (for a head, a
body, or the next request), as if its deadline had come (408 and close); a
connection whose request the app is serving is never ended. The descriptors
held back are for the process's own files (about 20) and for connections
accepted together in one turn of the event loop, which are counted only once
each is made. Measured with the open-file limit at 1,024 and 2,047 connections
sending a body a byte at a time: without this, new clients failed for the
first 10 s, until the deadline closed the slow ones; with it, none failed. A
flood of more new connections at once than the descriptors held back can
still take the last of them: per-client limits in a proxy are the answer.

Beyond ``limit_concurrency``, uvicorn's own 503 says when to come back
(``Retry-After``), as the service's does when its model routes are full. That
one, too, is answered here once a request's head is read, before the app is
called, when the app's admission (``app.deps.Admission``, which its lifespan
passes on) says it is full: the answer the app would give, made once at
start-up, written at once, with no task, no middleware and no log line, and
the connection kept for the client's next request. Measured with nothing but
refusals, this costs a quarter of the CPU time of a refusal by the app (32 to
34 us against 132 to 155), and three fifths of one through an ASGI task to the
app's handler (51 to 55 us): at four times the load a worker carries, three
requests in four are refused, and what they cost is taken from the requests
let in.
"""

import asyncio
import functools
import resource
from collections.abc import Iterator
from typing import ClassVar, cast

from starlette.types import Scope as StarletteScope
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable
from uvicorn._types import Scope as UvicornScope
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from app.deps import Admission, BusyAnswer

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


# The open-file limit held back from connections, as a share of it and at
# least a number of files; see above.
RESERVED_SHARE = 1 / 8
RESERVED_FILES = 64


@functools.cache
def connections_within_open_files() -> int | None:
    """How many connections may be open at once; None: no open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, soft - max(int(soft * RESERVED_SHARE), RESERVED_FILES))


# The empty line that ends a head. httptools (llhttp) refuses bare line feeds,
# so this is the only way a head can end.
HEAD_END = b"\r\n\r\n"


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with deadlines for request heads and bodies, a head size
    limit, and room kept for new connections.

    Pass ``timeout_body`` (and ``max_connections``, by default a share of the
    open-file limit) with ``functools.partial``: uvicorn builds one protocol
    per connection from its own settings only.
    """

    # The connections of this process waiting for their clients (for a head, a
    # body, or the next request), the longest waiting first: a dict keeps the
    # order in which they began, so the longest is found at once, however many
    # there are. The process's open files are what they share.
    waiting: ClassVar[dict["LimitedHttpToolsProtocol", None]] = {}

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        timeout_body: float = 10,
        max_connections: int | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or 16 * 1024
        self.timeout_body = timeout_body
        self.max_connections = max_connections or connections_within_open_files()
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
        if self.max_connections and len(self.connections) > self.max_connections:
            longest = next(
                (
                    connection
                    for connection in self.waiting
                    if connection is not self and not connection.transport.is_closing()
                ),
                None,
            )
            if longest is not None:
                longest._time_out()  # as if its deadline had come

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
        elif isinstance(admission := self.app_state.get("admission"), Admission):
            # A model route when the service is full: answered here, cheaply.
            # (uvicorn and Starlette type the same ASGI scope and app apart.)
            answer = admission.turned_away(cast(StarletteScope, cycle.scope))
            if answer is not None and not self.flow.write_paused:
                self._answer_at_once(cycle, answer)
                return
            if answer is not None:  # a client not reading its answers: as the app
                app = cast(ASGI3Application, answer)  # would, wait for it to read
        super()._start_asgi_task(cycle, app)

    def _answer_at_once(self, cycle: RequestResponseCycle, answer: BusyAnswer) -> None:
        """Answer the request, in one write, without calling the app; the rest
        of its body is read and dropped, and the connection kept if the client
        keeps it, as uvicorn does when the app answers before reading a body."""
        head = [STATUS_LINE[answer.status]]
        for name, value in (*cycle.default_headers, *answer.headers):
            head += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        cycle.response_started = cycle.response_complete = True
        # An answer to HEAD has no body (a model route a user declares for it).
        body = b"" if cycle.scope["method"] == "HEAD" else answer.body
        self.transport.write(b"".join((*head, b"\r\n", body)))
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

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
        answered = self.cycle is not None and self.cycle.response_complete
        if answered and not self.pipeline:
            self._wait()  # answered before its body ended: idle until the next

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.refusal is not None:
            self._refuse(self.refusal)  # if that was the last answer due
        else:
            # A pipelined request whose body is still to come may have started.
            self._arm_body_deadline()
            if self.timeout_keep_alive_task is not None:  # idle until the next
                self._wait()

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
        self._wait()

    def _disarm(self) -> None:
        """Stop waiting for the client: the app has the request, or it is over."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.waiting.pop(self, None)

    def _wait(self) -> None:
        """Begin to wait for the client: last in the order of waiting."""
        self.waiting.pop(self, None)
        self.waiting[self] = None

    def _time_out(self) -> None:
        self._disarm()
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
