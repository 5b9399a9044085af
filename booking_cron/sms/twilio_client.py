"""Build the real `twilio` SDK client, optionally aimed at a Twilio-compatible base URL.

The same code path talks to api.twilio.com in production and to the local sandbox (or a
recording proxy) in tests and demos; only `api_url` changes.
"""

from __future__ import annotations

from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

_POOL_SIZE = 32  # concurrent senders sharing one client keep their connections


def make_twilio_client(account_sid: str, auth_token: str, api_url: str | None = None,
                       timeout: float = 10.0) -> Client:
    """Return a `twilio.rest.Client` that makes exactly one HTTP attempt per call, bounded by `timeout`.

    `api_url` (e.g. ``http://127.0.0.1:8765``) replaces ``https://api.twilio.com`` as the base
    URL of the SDK's ``api`` domain, which serves everything under ``/2010-04-01`` (Messages,
    Calls, Accounts...), including the absolute next-page URLs the SDK builds while listing.
    This is the SDK's own knob (``Domain.base_url``, set in ``ApiBase.__init__``); other product
    domains (messaging.twilio.com, lookups.twilio.com, ...) are not redirected.

    The SDK never retries: both http:// and https:// use ``HTTPAdapter(max_retries=0)`` (urllib3
    ``Retry(0, read=False)``), because the caller owns retries and must decide whether a request
    that may have been accepted is safe to resend. The SDK does not wrap transport errors, so
    callers see plain ``requests`` exceptions (all subclasses of
    ``requests.exceptions.RequestException``):

    * server accepted the request but did not answer within `timeout`:
      ``requests.exceptions.ReadTimeout`` (a ``requests.exceptions.Timeout``). The message
      MAY have been sent.
    * could not connect in time: ``requests.exceptions.ConnectTimeout`` (both a ``Timeout`` and a
      ``ConnectionError``); nothing was sent.
    * connection closed without a response (dropped): ``requests.exceptions.ConnectionError``
      wrapping ``RemoteDisconnected``; the message MAY have been sent. Connection refused is also
      a ``ConnectionError``.
    * any HTTP error answer (4xx/5xx, including 429): ``twilio.base.exceptions.TwilioRestException``
      with ``.status`` (HTTP status) and ``.code`` (Twilio error code, e.g. 21211, 20429).
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    http_client = TwilioHttpClient(timeout=timeout)
    for scheme in ("https://", "http://"):
        http_client.session.mount(scheme, HTTPAdapter(max_retries=0, pool_maxsize=_POOL_SIZE))
    client = Client(account_sid, auth_token, http_client=http_client)
    if api_url:
        client.api.base_url = api_url.rstrip("/")
    return client
