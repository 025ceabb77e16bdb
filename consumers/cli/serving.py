"""How both HTTP APIs are served (uvicorn): deadlines for slow clients.

uvicorn closes an idle keep-alive connection, but it waits forever for a client that
sends its request slowly, so a few hundred slow connections hold the server's sockets
(slowloris). Two deadlines, both settings of :class:`~consumers.settings.ApiSettings`:

* ``http_header_timeout_s``: from the connection (or the end of the previous response)
  to the end of the request's headers; past it the connection is closed.
* ``http_body_timeout_s``: the longest wait for each piece of the request body; past it
  the request answers 408 ``{"error": "request_timeout", …}`` and the connection closes.

A proxy in front (an ingress) may enforce tighter limits; these hold without one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from consumers.settings.concerns import ApiSettings

__all__ = ["BodyDeadline", "server_config"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def server_config(
    app: App, *, host: str, port: int, api: ApiSettings, log_level: str
) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` with both slow-client deadlines in force."""
    protocol = type(
        "HeaderDeadlineProtocol",
        (_HeaderDeadline,),
        {"header_timeout_s": api.http_header_timeout_s},
    )
    return uvicorn.Config(
        BodyDeadline(app, timeout_s=api.http_body_timeout_s),
        host=host,
        port=port,
        http=protocol,
        log_level=log_level,
        access_log=False,
    )


class _HeaderDeadline(H11Protocol):
    """h11 with a deadline on the request headers (armed per request, not per byte)."""

    header_timeout_s = 10.0
    _deadline: asyncio.TimerHandle | None = None
    _waiting_since: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not self._waiting_since:  # a request's headers arrived
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # before: a pipelined request is parsed inside the call below
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self._waiting_since = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is self._waiting_since and not self.transport.is_closing():
            self.transport.close()


class BodyDeadline:
    """ASGI middleware: each piece of a request body must arrive within ``timeout_s``."""

    def __init__(self, app: App, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"body_done": False, "started": False, "answered": False}

        async def timed_receive() -> Message:
            if state["body_done"] or state["answered"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                await _answer_408(send, started=state["started"], timeout_s=self.timeout_s)
                state["answered"] = True
                return {"type": "http.disconnect"}  # the app stops as if the client left
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def tracking_send(message: Message) -> None:
            if state["answered"]:
                return  # we answered 408 already; whatever the app says now goes nowhere
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, timed_receive, tracking_send)


async def _answer_408(send: Send, *, started: bool, timeout_s: float) -> None:
    if started:
        return
    body = json.dumps(
        {"error": "request_timeout", "detail": f"the request body took over {timeout_s:g}s"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
