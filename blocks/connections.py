"""The two blocks booking-cron reads, and the command that saves them from the environment.

- `booking-cron-db`: prefect-sqlalchemy's SqlAlchemyConnector (driver postgresql+psycopg),
  the password a SecretStr.
- `booking-cron-twilio`: TwilioCredentials (ours; the built-in twilio-sms block is a
  notification block for fixed recipients), the auth token a SecretStr.

Explicit settings win over the blocks (booking_cron/ops/wiring.py has the rule for every command): a
flow run loads a block only for what its environment does not set, DATABASE_URL for the database,
TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (both) for Twilio.
"""

from __future__ import annotations

import os
import time
from typing import TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

from prefect.blocks.core import Block
from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector
from pydantic import Field, SecretStr

from booking_cron import config

DATABASE_BLOCK = config.database_block_name()  # read once, at import: other modules import the names
TWILIO_BLOCK = config.twilio_block_name()


class TwilioCredentials(Block):
    """Twilio account credentials and the API base URL (a proxy or the local sandbox in tests)."""

    _block_type_name = "booking-cron Twilio credentials"
    _block_type_slug = "booking-cron-twilio-credentials"

    account_sid: str = Field(description="Twilio account SID (AC...)")
    auth_token: SecretStr = Field(description="Twilio auth token")
    api_url: str = Field(default=config.DEFAULT_TWILIO_API_URL, description="Base URL of the Twilio REST API")


def connector_from_url(url: str) -> SqlAlchemyConnector:
    parts = urlsplit(url)
    return SqlAlchemyConnector(connection_info=ConnectionComponents(
        driver="postgresql+psycopg", database=parts.path.lstrip("/") or "postgres",
        username=parts.username, password=parts.password, host=parts.hostname, port=parts.port,
        query=dict(parse_qsl(parts.query)) or None))


def url_from_connector(connector: SqlAlchemyConnector) -> str:
    """A libpq URL (what psycopg and yoyo take) from the block's connection info."""
    url = connector.connection_info.create_url().set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def register_blocks_from_environment() -> list[str]:
    """Save DATABASE_URL and TWILIO_* as blocks (overwriting); returns the names saved."""
    saved = []
    if url := config.database_url_from_env():
        connector_from_url(url).save(DATABASE_BLOCK, overwrite=True)
        saved.append(DATABASE_BLOCK)
    if twilio := config.twilio_settings_from_env():
        TwilioCredentials(account_sid=twilio.account_sid, auth_token=SecretStr(twilio.auth_token),
                          api_url=twilio.api_url).save(TWILIO_BLOCK, overwrite=True)
        saved.append(TWILIO_BLOCK)
    return saved


B = TypeVar("B", bound=Block)


def _load(block_type: type[B], name: str) -> B | None:
    try:
        # called from sync code, where Prefect's async_dispatch returns the block (it is typed as
        # "the block or a coroutine" for both callers)
        return cast(B, block_type.load(name))
    except ValueError:  # no such block document
        return None


def saved_database_url() -> str | None:
    """The URL the `booking-cron-db` block holds on the current Prefect API, None without one."""
    db = _load(SqlAlchemyConnector, DATABASE_BLOCK)
    return url_from_connector(db) if db is not None else None


_BLOCKS_TTL = 60.0
_last_load: tuple[float, list[str]] | None = None
_from_blocks: dict[str, str] = {}  # what this process took from a block, not from its environment


def _explicit(*names: str) -> bool:
    """Whether the environment itself sets all of `names` (not an earlier block load)."""
    return all(os.environ.get(name) and os.environ[name] != _from_blocks.get(name) for name in names)


def _set_from_block(**values: str) -> None:
    os.environ.update(values)
    _from_blocks.update(values)


def load_blocks_into_environment(refresh: bool = False) -> list[str]:
    """Put the saved blocks' settings into this process's environment (which every adapter
    reads) where the environment does not set them itself: explicit settings win. Returns the
    names of the blocks used. Secrets stay in memory, never in logs.

    Looked up at most once a minute per process: a backfill's slots need not ask again."""
    global _last_load
    if not refresh and _last_load and time.monotonic() - _last_load[0] < _BLOCKS_TTL:
        return _last_load[1]
    used = []
    explicit_database = _explicit("DATABASE_URL") or config.embedded_database()
    if not explicit_database and (url := saved_database_url()) is not None:
        _set_from_block(DATABASE_URL=url)
        used.append(DATABASE_BLOCK)
    if not _explicit("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") and \
            (twilio := _load(TwilioCredentials, TWILIO_BLOCK)) is not None:
        _set_from_block(TWILIO_ACCOUNT_SID=twilio.account_sid, TWILIO_AUTH_TOKEN=twilio.auth_token.get_secret_value(),
                        TWILIO_API_URL=twilio.api_url)
        used.append(TWILIO_BLOCK)
    _last_load = (time.monotonic(), used)
    return used
