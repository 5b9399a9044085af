"""The HTTP endpoint Twilio calls: `POST /twilio/status` (receipts) and `POST /twilio/inbound`
(replies), behind a signature check, a size cap and a strict form parser.

Bad input is the caller's problem (4xx) and never reaches the database; only a database that
cannot answer gives 503. Logs carry masked numbers, never a token, a signature or a reply's text.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

import psycopg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from booking_cron.database import DatabaseUnavailable
from booking_cron.texts.phones import e164_or_none, mask_phone
from booking_cron.webhooks import rules, store

log = logging.getLogger("booking_cron.webhooks")
FORM = "application/x-www-form-urlencoded"
TWIML = "text/xml"
CONFIRMED_REPLY = "Thanks, your session is confirmed."


@dataclass(frozen=True)
class WebhookSettings:
    public_url: str   # what Twilio signs: BOOKING_CRON_PUBLIC_URL, not the bind address
    auth_token: str
    database_url: str | None = None

    def __repr__(self) -> str:  # never print the token
        return f"WebhookSettings(public_url={self.public_url!r})"


class Refused(Exception):
    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status, self.why = status, why


async def _signed_form(request: Request, settings: WebhookSettings, required: tuple[str, ...]) -> dict[str, str]:
    """The request's form once it is small, well formed and signed by Twilio; Refused otherwise."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise Refused(415, "not a form body")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > rules.MAX_FORM_BYTES):
        raise Refused(413, "body too large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > rules.MAX_FORM_BYTES:
            raise Refused(413, "body too large")
    try:
        form = rules.parse_form(bytes(raw))
    except rules.BadForm as error:
        raise Refused(400, str(error)) from None
    url = settings.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signature = request.headers.get("x-twilio-signature", "")
    if not signature or not RequestValidator(settings.auth_token).validate(url, form, signature):
        raise Refused(403, "missing or wrong X-Twilio-Signature")
    if missing := rules.missing_fields(form, required):
        raise Refused(400, f"missing {', '.join(missing)}")
    return form


def create_app(settings: WebhookSettings) -> FastAPI:
    app = FastAPI(title="booking-cron webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    async def guarded(request: Request, required: tuple[str, ...], handle) -> Response:
        try:
            form = await _signed_form(request, settings, required)
            return await run_in_threadpool(handle, form)
        except Refused as refused:
            log.warning("%s refused (%s): %s", request.url.path, refused.status, refused.why)
            return Response(refused.why + "\n", status_code=refused.status, media_type="text/plain")
        except (DatabaseUnavailable, PoolTimeout, psycopg.OperationalError) as error:
            log.error("%s: database unavailable: %s", request.url.path, type(error).__name__)
            return Response("database unavailable\n", status_code=503, media_type="text/plain")

    def receipt(form: dict[str, str]) -> Response:
        sid, reported = form["MessageSid"], form["MessageStatus"]
        result = store.apply_receipt(sid, reported, form.get("ErrorCode"), settings.database_url)
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
        return await guarded(request, ("MessageSid", "MessageStatus"), receipt)

    @app.post("/twilio/inbound")
    async def twilio_inbound(request: Request) -> Response:
        return await guarded(request, ("MessageSid", "From", "To"), reply)

    return app


def _config(settings: WebhookSettings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", access_log=False,
                          timeout_keep_alive=5, limit_concurrency=100, h11_max_incomplete_event_size=16 * 1024)


def serve(settings: WebhookSettings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run until Ctrl-C or SIGTERM (uvicorn handles both)."""
    uvicorn.Server(_config(settings, host, port)).run()


class BackgroundServer:
    """The endpoint in a daemon thread on a port picked here (0: any free one), for the demo and
    tests; its public URL is its own address unless a proxy's is given."""

    def __init__(self, auth_token: str, public_url: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 database_url: str | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.settings = WebhookSettings(public_url or self.url, auth_token, database_url)
        self.server = uvicorn.Server(_config(self.settings, host, self.port))
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
