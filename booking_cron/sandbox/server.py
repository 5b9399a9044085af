"""A local, Twilio-compatible Messages API for tests, demos and load runs.

Real Twilio costs money, needs the internet and cannot fail on cue; this speaks enough of the
2010-04-01 REST API for the real `twilio` SDK to work, and injects the failures we must survive.
"""

from __future__ import annotations

import base64
import bisect
import hmac
import json
import random
import re
import signal
import socketserver
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, cast
from urllib.error import URLError
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import Request, urlopen

from twilio.request_validator import RequestValidator

from booking_cron.domain.texts.phones import mask_phone

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "ACsandbox" + "0" * 25
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
FAULT_KINDS = ("429", "500", "503", "timeout_after_accept", "drop", "drop_after_accept")
CONFIG_KEYS = ("latency", "rate_limit", "fault_rate", "fault_kinds", "number_errors",
               "one_shot_faults", "stall_seconds", "undeliverable", "callback_delay", "list_lag", "list_fault")
_COERCE: dict[str, Callable[[Any], Any]] = {"latency": float, "fault_rate": float, "stall_seconds": float, "fault_kinds": list,
           "one_shot_faults": lambda v: deque(v or ()), "callback_delay": float, "list_lag": float,
           "list_fault": lambda v: int(v) if v else None,
           "number_errors": lambda v: {str(n): int(c) for n, c in (v or {}).items()},
           "undeliverable": lambda v: {str(n): int(c) for n, c in (v or {}).items()}}
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY_CHARS = 1600
ERROR_MESSAGES = {
    20003: "Authenticate", 20404: "The requested resource {path} was not found", 20429: "Too Many Requests",
    20500: "Internal Server Error", 20503: "Service Unavailable", 21602: "Message body is required.",
    21211: "The 'To' number {to} is not a valid phone number.", 21610: "Attempt to send to unsubscribed recipient",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21614: "'To' number {to} is not a valid mobile number", 21408: "Permission to send an SMS has not been "
    "enabled for the region indicated by the 'To' number: {to}.",
    21617: "The concatenated message body exceeds the 1600 character limit."}
_MESSAGES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)/Messages(?:/([^/]+))?\.json$")
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXT = set("^{}\\[~]|€\f")


def twilio_error(code: int, status: int, **fmt: Any) -> dict:
    """The JSON error body Twilio sends; the SDK turns it into TwilioRestException(status, code)."""
    message = ERROR_MESSAGES.get(code, f"Sandbox-injected error {code}").format(**fmt)
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


def count_segments(body: str) -> int:
    """SMS segments as Twilio bills them: GSM-7 (160/153 per part) unless a char needs UCS-2 (70/67)."""
    if all(c in _GSM7 or c in _GSM7_EXT for c in body):
        units, single, multi = sum(2 if c in _GSM7_EXT else 1 for c in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // multi)



class TwilioSandbox:
    """In-process Twilio look-alike with runtime-configurable latency, rate limit and faults."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN,
                 latency: float = 0.0, rate_limit: float | None = None, seed: int = 0,
                 on_accept: Callable[[dict], None] | None = None):
        self.host, self.port = host, port
        self.account_sid, self.auth_token = account_sid, auth_token
        self.on_accept = on_accept  # called (outside the lock) with each accepted record
        self.latency, self.rate_limit, self.stall_seconds = float(latency), rate_limit, 30.0
        self._seed = seed
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def start(self) -> "TwilioSandbox":
        """Bind and serve in a daemon thread, so tests need no process management."""
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"twilio-sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled and sleeping requests are released and closed unanswered."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> "TwilioSandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def configure(self, **kwargs: Any) -> dict:
        """Change behaviour at runtime (also reachable via POST /_sandbox/config); returns the config."""
        kinds = list(kwargs.get("fault_kinds") or ()) + list(kwargs.get("one_shot_faults") or ())
        if set(kwargs) - set(CONFIG_KEYS) or set(kinds) - {*FAULT_KINDS, "ok"}:
            raise ValueError(f"settings must be among {CONFIG_KEYS}, fault kinds among {FAULT_KINDS} "
                             f"('ok' = no fault, one-shot); got {sorted(kwargs)} with kinds {kinds}")
        if not 0.0 <= float(kwargs.get("fault_rate", 0.0)) <= 1.0:
            raise ValueError("fault_rate must be within 0..1")
        coerced = {key: _COERCE.get(key, lambda v: v)(value) for key, value in kwargs.items()}
        with self._lock:  # all or nothing: nothing is set if any value was bad
            for key, value in coerced.items():
                setattr(self, key, value)
            return self.config()

    def config(self) -> dict:
        with self._lock:
            return {"latency": self.latency, "rate_limit": self.rate_limit, "fault_rate": self.fault_rate,
                    "fault_kinds": list(self.fault_kinds), "number_errors": dict(self.number_errors),
                    "one_shot_faults": list(self.one_shot_faults), "stall_seconds": self.stall_seconds,
                    "undeliverable": dict(self.undeliverable), "callback_delay": self.callback_delay,
                    "list_lag": self.list_lag, "list_fault": self.list_fault}

    def reset(self) -> None:
        """Forget messages, request log and faults (latency/rate limit stay); reseed the RNG."""
        with self._lock:
            self._records: list[dict] = []
            self._resources: dict[str, dict] = {}
            self._accept_times: list[float] = []  # monotonic, ascending: taken under the lock
            self._requests: list[dict] = []
            self._faults_injected = 0
            self.fault_rate, self.fault_kinds = 0.0, list(FAULT_KINDS)
            self.number_errors: dict[str, int] = {}
            self.undeliverable: dict[str, int] = {}  # number -> error code its receipt reports
            self.callback_delay = 0.05  # before each status callback (Twilio's come seconds later)
            self._callbacks: list[dict] = []
            self.one_shot_faults: deque[str] = deque()
            self.list_lag = 0.0  # seconds an accepted message takes to show in lists (Twilio's lag behind accepts)
            self.list_fault: int | None = None  # HTTP status every list (look-up) answers while set, e.g. 503
            self._list_requests = 0
            self._rng = random.Random(self._seed)

    @property
    def messages(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._records]

    @property
    def requests(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def callbacks(self) -> list[dict]:
        """The status callbacks made: sid, status, error code, HTTP answer (None: no answer)."""
        with self._lock:
            return [dict(c) for c in self._callbacks]

    def max_in_any_second(self) -> int:
        """Peak accepted messages within any one-second window: the number a rate limit cares about."""
        with self._lock:
            times = list(self._accept_times)
        best = first = 0
        for last, t in enumerate(times):
            while t - times[first] >= 1.0:
                first += 1
            best = max(best, last - first + 1)
        return best

    def stats(self) -> dict:
        with self._lock:
            return {"accepted": len(self._records), "requests": len(self._requests),
                    "max_in_any_second": self.max_in_any_second(),
                    "faults_injected": self._faults_injected,
                    "rate_limited": sum(r["outcome"] == "rate_limited" for r in self._requests),
                    "callbacks": len(self._callbacks), "list_requests": self._list_requests}

    def _api(self, method: str, path: str, query: dict, form: dict, authorization: str | None):
        """Answer one REST call: (status, payload), or (None, None) to close the socket unanswered."""
        if self.latency > 0:
            self._stopping.wait(self.latency)
        match = _MESSAGES_PATH.match(path)
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if not hmac.compare_digest((authorization or "").encode(), expected.encode()) or (
                match and match.group(1) != self.account_sid):
            return self._log_post(method, form, "unauthorized", 401, twilio_error(20003, 401))
        if match and method == "POST" and not match.group(2):
            return self._create(form)
        if match and method == "GET" and match.group(2):
            with self._lock:
                resource = self._resources.get(match.group(2))
            return (200, resource) if resource else (404, twilio_error(20404, 404, path=path))
        if match and method == "GET":
            with self._lock:
                self._list_requests += 1
                fault = self.list_fault
            if fault:
                return fault, twilio_error(20000 + fault, fault)
            try:
                return 200, self._list_page(query)
            except ValueError:
                return 400, twilio_error(20001, 400)
        return self._log_post(method, form, "not_found", 404, twilio_error(20404, 404, path=path))

    def _log_post(self, method, form, outcome, status, payload=None, sid=None):
        if method == "POST":
            with self._lock:
                self._requests.append({"at": time.time(), "to": form.get("To"), "outcome": outcome,
                                       "status": status, "sid": sid})
        return status, payload

    def _create(self, form: dict):
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From") or None, form.get("MessagingServiceSid") or None
        with self._lock:
            code = (21211 if not E164.match(to) else 21603 if not (sender or service) else
                    21602 if not body else 21617 if len(body) > MAX_BODY_CHARS else self.number_errors.get(to))
            if code:
                return self._log_post("POST", form, f"error:{code}", 400, twilio_error(code, 400, to=to))
            now = time.monotonic()
            if self.rate_limit is not None and (len(self._accept_times) - bisect.bisect_right(
                    self._accept_times, now - 1.0)) >= self.rate_limit:
                return self._log_post("POST", form, "rate_limited", 429, twilio_error(20429, 429))
            fault, stall = self._draw_fault(), self.stall_seconds
            if fault in ("429", "500", "503"):
                return self._log_post("POST", form, f"fault:{fault}", int(fault),
                                      twilio_error(20000 + int(fault), int(fault)))
            if fault == "drop":
                return self._log_post("POST", form, "fault:drop", None)
            resource, record = self._accept(to, sender, service, body, now)
            self._log_post("POST", form, f"fault:{fault}" if fault else "accepted", None if fault else 201,
                           sid=resource["sid"])
        if self.on_accept:
            try:
                self.on_accept(record)
            except Exception:  # a broken printer must not turn an accepted send into a dropped one
                pass
        if form.get("StatusCallback"):
            threading.Thread(target=self._call_back, args=(form["StatusCallback"], resource), daemon=True,
                             name=f"callback-{resource['sid']}").start()
        if fault == "timeout_after_accept":
            self._stopping.wait(stall)
        return (None, None) if fault else (201, resource)

    def _call_back(self, url: str, resource: dict) -> None:
        """Twilio's receipts for one accepted message, in order, signed with the auth token:
        `sent`, then `delivered`, or `undelivered` with the code configured for the number."""
        with self._lock:
            code, delay = self.undeliverable.get(resource["to"]), self.callback_delay
        for status in ("sent", "undelivered" if code else "delivered"):
            if self._stopping.wait(delay):
                return
            params = {"MessageSid": resource["sid"], "SmsSid": resource["sid"], "AccountSid": self.account_sid,
                      "MessageStatus": status, "SmsStatus": status, "To": resource["to"],
                      "From": resource["from"] or "", "ApiVersion": API_VERSION}
            if status == "undelivered":
                params["ErrorCode"] = str(code)
            signature = RequestValidator(self.auth_token).compute_signature(url, params)
            request = Request(url, data=urlencode(params).encode(), method="POST", headers={
                "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
            try:
                with urlopen(request, timeout=10) as answer:
                    http = answer.status
            except URLError as error:  # HTTPError (a 4xx/5xx answer) is a URLError with a code
                http = getattr(error, "code", None)
            except OSError:
                http = None
            with self._lock:
                resource["status"], resource["error_code"] = status, code if status == "undelivered" else None
                self._callbacks.append({"sid": resource["sid"], "status": status,
                                        "error_code": params.get("ErrorCode"), "http": http})

    def _draw_fault(self) -> str | None:
        """One-shot faults first (deterministic tests), then a seeded coin flip for random ones."""
        if self.one_shot_faults:
            kind = self.one_shot_faults.popleft()
        elif self.fault_rate > 0 and self.fault_kinds and self._rng.random() < self.fault_rate:
            kind = self._rng.choice(self.fault_kinds)
        else:
            kind = "ok"
        self._faults_injected += kind != "ok"
        return None if kind == "ok" else kind

    def _accept(self, to, sender, service, body, now_mono) -> tuple[dict, dict]:
        # sids stay unique across sandboxes and resets (never from the seeded RNG): callers store them
        sid, accepted_at = "SM" + uuid.uuid4().hex, time.time()
        stamp = format_datetime(datetime.fromtimestamp(accepted_at, timezone.utc))
        resource = {
            "sid": sid, "account_sid": self.account_sid, "to": to, "from": sender,
            "messaging_service_sid": service, "body": body, "status": "queued",
            "num_segments": str(count_segments(body)), "num_media": "0", "direction": "outbound-api",
            "date_created": stamp, "date_updated": stamp, "date_sent": stamp,
            "price": None, "price_unit": "USD", "error_code": None, "error_message": None,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
            "api_version": API_VERSION, "subresource_uris": {},
        }
        self._resources[sid] = resource
        self._accept_times.append(now_mono)
        record = {"sid": sid, "to": to, "from": sender, "messaging_service_sid": service,
                  "body": body, "accepted_at": accepted_at}
        self._records.append(record)
        return resource, dict(record)

    def _list_page(self, query: dict) -> dict:
        """A Twilio list page (newest first) with Page/PageSize paging the SDK can follow, filtered
        by To, From and DateSent (`DateSent>` on or after, `DateSent<` on or before: a day
        `YYYY-MM-DD` or a UTC time `YYYY-MM-DDTHH:MM:SSZ`). A message accepted less than `list_lag`
        seconds ago is not listed yet."""
        filters = {k: query[k] for k in ("To", "From") if query.get(k)}
        dates = {k: query[k] for k in ("DateSent>", "DateSent<", "DateSent") if query.get(k)}
        after, before = _date_bound(dates.get("DateSent>") or dates.get("DateSent"), False), \
            _date_bound(dates.get("DateSent<") or dates.get("DateSent"), True)
        size = min(int(query["PageSize"]) if query.get("PageSize", "").isdigit() else 50, 1000) or 50
        page = int(query["Page"]) if query.get("Page", "").isdigit() else 0
        listed_until = time.time() - self.list_lag
        with self._lock:
            matches = [self._resources[r["sid"]] for r in reversed(self._records)
                       if r["accepted_at"] <= listed_until and after <= r["accepted_at"] <= before
                       and all(self._resources[r["sid"]][k.lower()] == v for k, v in filters.items())]
        start = page * size
        items = matches[start:start + size]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        uri = lambda p: f"{base}?{urlencode({**filters, **dates, 'PageSize': size, 'Page': p})}"  # noqa: E731
        return {"messages": items, "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if len(matches) > start + size else None,
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "page": page, "page_size": size, "start": start,
                "end": start + max(len(items) - 1, 0), "uri": uri(page)}

    def _reset_then_stats(self) -> dict:
        self.reset()
        return self.stats()

    def _admin(self, method: str, path: str, raw: bytes):
        """Unauthenticated loopback endpoints, to drive and inspect a sandbox in another process."""
        routes = {("GET", "messages"): lambda: self.messages, ("GET", "requests"): lambda: self.requests,
                  ("GET", "stats"): self.stats, ("GET", "config"): self.config,
                  ("POST", "config"): lambda: self.configure(**json.loads(raw or b"{}")),
                  ("POST", "reset"): self._reset_then_stats}
        action = routes.get((method, path.removeprefix("/_sandbox/")))
        try:
            return (200, action()) if action else (404, {"error": f"no admin endpoint {method} {path}"})
        except (ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}


def _date_bound(value: str | None, end: bool) -> float:
    """A DateSent filter value as a Unix time: a day covers all of it; a time is exact; ValueError if neither."""
    if not value:
        return float("inf") if end else float("-inf")
    if len(value) == 10:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
        return day + 86400 - 1e-6 if end else day
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


class _Server(ThreadingHTTPServer):
    daemon_threads, request_queue_size, allow_reuse_address = True, 128, True
    sandbox: TwilioSandbox

    def server_bind(self) -> None:
        """Skip HTTPServer's reverse-DNS lookup of the host, which can hang on offline machines."""
        socketserver.TCPServer.server_bind(self)
        # an AF_INET server's address is (host, port); typeshed types it for every address family
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: no stale pooled sockets after faults
    server_version = "TwilioSandbox/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming); do_POST shares it, self.command tells
        sandbox: TwilioSandbox = cast(_Server, self.server).sandbox
        method = self.command
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path.startswith("/_sandbox/"):
            status, payload = sandbox._admin(method, url.path, raw)
        else:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, payload = sandbox._api(method, url.path, query, form, self.headers.get("Authorization"))
        if status is None or sandbox._stopping.is_set():
            self.close_connection = True  # drop: the client sees the connection closed, no response
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


def serve_forever(host: str = "127.0.0.1", port: int = 8765, account_sid: str = DEFAULT_ACCOUNT_SID,
                  auth_token: str = DEFAULT_AUTH_TOKEN, latency: float = 0.0,
                  rate_limit: float | None = None, seed: int = 0,
                  out: Callable[[str], None] = lambda line: print(line, flush=True),
                  **config: Any) -> None:
    """Run a sandbox in the foreground until Ctrl-C/SIGTERM, one masked line per accepted message."""
    print_lock = threading.Lock()

    def show(record: dict) -> None:
        with print_lock:
            body = record["body"].replace("\n", " ")
            out(f"{time.strftime('%H:%M:%S')} {record['sid']} -> {mask_phone(record['to'])}: {body}")

    in_main = threading.current_thread() is threading.main_thread()  # signals can only be set there
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if in_main else None
    sandbox = TwilioSandbox(host, port, account_sid, auth_token, latency, rate_limit, seed, on_accept=show)
    sandbox.configure(**config)
    try:
        with sandbox:
            out(f"Twilio sandbox listening on {sandbox.url} (account {account_sid}); Ctrl-C to stop")
            while True:
                time.sleep(3600)  # SIGTERM and Ctrl-C both arrive as KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    out("Twilio sandbox stopped")
