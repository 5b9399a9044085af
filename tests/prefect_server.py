"""A real `prefect server start` for the tests that need one (tests/test_schedule.py,
tests/test_scale_out.py), and the small REST and CLI helpers they share."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def prefect_server(home: Path, port: int, **settings: str) -> Iterator[tuple[str, Path]]:
    """`prefect server start` with its own PREFECT_HOME (and `settings`, e.g. a PostgreSQL
    database); the scheduler loops every 5 s instead of 60 s (the same service, checked more
    often). Yields (api url, path of its log)."""
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
           "PREFECT_LOGGING_LEVEL": "INFO", **settings}
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: ok(f"{url}/health"), 120, "prefect server did not start")
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition, timeout: float, failure: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    pytest.fail(failure)


def booking_cron(env, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "booking_cron", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def api(server, method: str, path: str, **kwargs):
    """One request to the server's REST API. A busy SQLite-backed server answers 503 ("database is
    locked") and expects the caller to retry, as Prefect's own client does; so does this."""
    for attempt in range(10):
        response = httpx.request(method, f"{server[0]}{path}", timeout=30, **kwargs)
        if response.status_code != 503:
            break
        time.sleep(0.5 * (attempt + 1))
    response.raise_for_status()
    return response.json() if response.content else None
