"""uvicorn's httptools protocol, with the limits on request heads it lacks.

uvicorn's keep-alive timeout only runs between requests, and httptools reads a
request head of any size: a client that sends a head a byte at a time, or one
that never ends, would hold a connection forever or grow memory without bound.
Here a connection must send a complete head within ``timeout_keep_alive``
seconds of opening, or of the first byte of a later request, and the head must
fit in ``h11_max_incomplete_event_size`` bytes (the limit uvicorn's h11 parser
applies to the same thing). Otherwise the answer is 408 or 431, and the
connection is closed.
"""

import asyncio

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with a deadline and a size limit for each request head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_deadline: asyncio.TimerHandle | None = None
        self.head_bytes: int | None = None  # None: not reading a head
        self.max_head_bytes = config.h11_max_incomplete_event_size or 16 * 1024

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still in a head after these bytes: they all belong to it.
        if self.head_bytes is not None and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head_bytes:
                self._refuse(HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0
        if self.head_deadline is None:
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        self._disarm_head_deadline()
        super().on_headers_complete()

    def _arm_head_deadline(self) -> None:
        self.head_deadline = self.loop.call_later(
            self.timeout_keep_alive, self._refuse, REQUEST_TIMEOUT
        )

    def _disarm_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _refuse(self, response: bytes) -> None:
        self._disarm_head_deadline()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()
