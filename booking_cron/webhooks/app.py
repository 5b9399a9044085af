"""The HTTP endpoint Twilio calls: `POST /twilio/status` (receipts) and `POST /twilio/inbound`
(replies), behind a signature check, a size cap and a strict form parser.

Bad input is the caller's problem (4xx) and never reaches the database; only a database that
cannot answer gives 503. Logs carry masked numbers, never a token, a signature or a reply's text.

Only Twilio can drive it, and no one else can keep Twilio out:
- a request without `X-Twilio-Signature` is refused (403) before a byte of its body is read;
- a request head must arrive within HEAD_SECONDS of connecting (or of the previous answer on the
  connection), and its body within BODY_SECONDS of the head (else 408 and the connection closes):
  Twilio sends a few hundred bytes at once, so a client that trickles or stalls is cut off;
- there is no cap that answers 503 to new requests (uvicorn's limit_concurrency would hand it to
  whoever opens enough slow connections); beyond MAX_CONNECTIONS open connections, the one that
  has waited longest for its client to finish a request is closed to make room, so stalled
  connections make room for a signed request instead of the other way round;
- a form is accepted only with Twilio's own fields in Twilio's form (rules.check_form), which
  also makes a captured request impossible to re-split into a "new" one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass

import psycopg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from twilio.request_validator import RequestValidator
from uvicorn.protocols.http.h11_impl import H11Protocol

from booking_cron.config import TEXT_REFERENCE_PARAM
from booking_cron.storage.database import DatabaseUnavailable
from booking_cron.domain.texts.phones import e164_or_none, mask_phone
from booking_cron.webhooks import rules, store

log = logging.getLogger("booking_cron.webhooks")
FORM = "application/x-www-form-urlencoded"
TWIML = "text/xml"
CONFIRMED_REPLY = "Thanks, your session is confirmed."

HEAD_SECONDS = 5.0    # from connecting (or the previous answer) to a complete request head
BODY_SECONDS = 5.0    # from the request head to the end of its body; Twilio's is one small packet
MAX_CONNECTIONS = 500  # open at once; beyond it the longest-waiting incomplete one is closed
MAX_SIGNATURE_CHARS = 128  # base64 of an HMAC-SHA1 (28) or HMAC-SHA256 (44)


@dataclass(frozen=True)
class WebhookSettings:
    public_url: str   # what Twilio signs: BOOKING_CRON_PUBLIC_URL, not the bind address
    auth_token: str
    database_url: str | None = None
    account_sid: str | None = None  # TWILIO_ACCOUNT_SID: requests must name it; None: only its form is checked
    body_seconds: float = BODY_SECONDS

    def __repr__(self) -> str:  # never print the token
        return f"WebhookSettings(public_url={self.public_url!r}, account_sid={self.account_sid!r})"


class Refused(Exception):
    def __init__(self, status: int, why: str, close: bool = False):
        super().__init__(why)
        self.status, self.why, self.close = status, why, close


async def _signed_form(request: Request, settings: WebhookSettings, fields: dict[str, str | None],
                       required: tuple[str, ...]) -> dict[str, str]:
    """The request's form once it is signed, small, well formed, complete in time and Twilio's
    own; Refused otherwise. Everything the headers can refuse is refused before the body is read."""
    signature = request.headers.get("x-twilio-signature", "")
    if not signature or len(signature) > MAX_SIGNATURE_CHARS:
        raise Refused(403, "missing or wrong X-Twilio-Signature")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise Refused(415, "not a form body")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > rules.MAX_FORM_BYTES):
        raise Refused(413, "body too large")
    raw = await _body(request, settings.body_seconds)
    try:
        form = rules.parse_form(raw)
    except rules.BadForm as error:
        raise Refused(400, str(error)) from None
    url = settings.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not RequestValidator(settings.auth_token).validate(url, form, signature):
        raise Refused(403, "missing or wrong X-Twilio-Signature")
    try:
        rules.check_form(form, fields, required, settings.account_sid)
    except rules.BadForm as error:
        raise Refused(400, str(error)) from None
    return form


async def _body(request: Request, seconds: float) -> bytes:
    """The whole body, read within `seconds` of the request head and at most MAX_FORM_BYTES."""
    raw = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > rules.MAX_FORM_BYTES:
                    raise Refused(413, "body too large")
    except TimeoutError:
        raise Refused(408, f"body not received within {seconds:g} s", close=True) from None
    except ClientDisconnect:
        raise Refused(400, "client went away", close=True) from None
    return bytes(raw)


def create_app(settings: WebhookSettings) -> FastAPI:
    app = FastAPI(title="booking-cron webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    async def guarded(request: Request, fields: dict, required: tuple[str, ...], handle) -> Response:
        try:
            form = await _signed_form(request, settings, fields, required)
            return await run_in_threadpool(handle, form)
        except Refused as refused:
            log.warning("%s refused (%s): %s", request.url.path, refused.status, refused.why)
            return Response(refused.why + "\n", status_code=refused.status, media_type="text/plain",
                            headers={"Connection": "close"} if refused.close else None)
        except (DatabaseUnavailable, PoolTimeout, psycopg.OperationalError) as error:
            log.error("%s: database unavailable: %s", request.url.path, type(error).__name__)
            return Response("database unavailable\n", status_code=503, media_type="text/plain")

    def receipt(form: dict[str, str], text_id: str | None) -> Response:
        sid, reported = form["MessageSid"], form["MessageStatus"]
        result = store.apply_receipt(sid, reported, form.get("ErrorCode"), settings.database_url, text_id=text_id)
        log.info("status %s %s%s: %s%s", sid[:40], reported[:20],
                 f" ({form['ErrorCode'][:10]})" if form.get("ErrorCode") else "", result.outcome,
                 f", number suppressed ({result.suppressed})" if result.suppressed else "")
        return Response(status_code=204)

    def reply(form: dict[str, str]) -> Response:
        sender = e164_or_none(form["From"], None) or form["From"]
        to = e164_or_none(form["To"], None) or form["To"]
        result = store.handle_reply(form["MessageSid"], sender, to, form.get("MessagingServiceSid", ""),
                                    form.get("Body", ""), settings.database_url)
        log.info("reply %s from %s to %s: %s, %s (%d org(s))", form["MessageSid"][:40], mask_phone(sender),
                 mask_phone(to), result.action, result.outcome, result.orgs)
        message = CONFIRMED_REPLY if result.outcome == "confirmed" else None
        return Response(rules.twiml(message), media_type=TWIML)

    @app.post("/twilio/status")
    async def twilio_status(request: Request) -> Response:
        text_id = rules.text_reference(request.query_params.get(TEXT_REFERENCE_PARAM))
        return await guarded(request, rules.STATUS_FIELDS, rules.STATUS_REQUIRED,
                             lambda form: receipt(form, text_id))

    @app.post("/twilio/inbound")
    async def twilio_inbound(request: Request) -> Response:
        return await guarded(request, rules.INBOUND_FIELDS, rules.INBOUND_REQUIRED, reply)

    return app


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the two limits it lacks (uvicorn times out only an idle
    keep-alive connection, and any byte received stops that clock):
    - a request head must arrive within `head_seconds` of connecting or of the previous answer;
      otherwise, or when the client keeps trickling the rest of a body already answered, the
      connection is closed;
    - beyond `max_connections`, the connection that has waited longest for its client (no
      complete request yet, or a body still arriving) is closed to make room for the new one."""

    head_seconds = HEAD_SECONDS
    max_connections = MAX_CONNECTIONS
    _head_deadline: asyncio.TimerHandle | None = None
    _waiting_since = 0.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request head arrived: from here on the app's body deadline applies
            self._head_arrived()

    def on_response_complete(self) -> None:
        self._await_head()  # before uvicorn starts a pipelined request, whose head cancels this
        super().on_response_complete()

    def _await_head(self) -> None:
        self._head_arrived()
        self._waiting_since = time.monotonic()
        self._head_deadline = self.loop.call_later(self.head_seconds, self.transport.close)

    def _head_arrived(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _waiting_for_client(self) -> bool:
        return self.cycle is None or self.cycle.response_complete or self.cycle.more_body

    def _make_room(self) -> None:
        waiting = [c for c in self.connections if c is not self and isinstance(c, _Protocol)
                   and c._waiting_for_client() and not c.transport.is_closing()]
        if waiting:
            min(waiting, key=lambda c: c._waiting_since).transport.close()


def _protocol(head_seconds: float, max_connections: int) -> type[_Protocol]:
    return type("WebhookProtocol", (_Protocol,), {"head_seconds": head_seconds, "max_connections": max_connections})


def _config(settings: WebhookSettings, host: str, port: int, head_seconds: float = HEAD_SECONDS,
            max_connections: int = MAX_CONNECTIONS) -> uvicorn.Config:
    return uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", access_log=False,
                          http=_protocol(head_seconds, max_connections), ws="none",
                          timeout_keep_alive=5, limit_concurrency=None, h11_max_incomplete_event_size=16 * 1024,
                          timeout_graceful_shutdown=10)


def serve(settings: WebhookSettings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run until Ctrl-C or SIGTERM (uvicorn handles both)."""
    uvicorn.Server(_config(settings, host, port)).run()


class BackgroundServer:
    """The endpoint in a daemon thread on a port picked here (0: any free one), for the demo and
    tests; its public URL is its own address unless a proxy's is given."""

    def __init__(self, auth_token: str, public_url: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 database_url: str | None = None, account_sid: str | None = None, body_seconds: float = BODY_SECONDS,
                 head_seconds: float = HEAD_SECONDS, max_connections: int = MAX_CONNECTIONS):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.settings = WebhookSettings(public_url or self.url, auth_token, database_url, account_sid, body_seconds)
        self.server = uvicorn.Server(_config(self.settings, host, self.port, head_seconds, max_connections))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"webhooks-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            self.thread.join(0.01)
        raise RuntimeError("the webhooks server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()
