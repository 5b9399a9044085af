"""Which Prefect API a command talks to, and the local Prefect server kept under the data folder.

PREFECT_API_URL (the environment or the active Prefect profile) wins. Without it, every command
that needs Prefect shares one `prefect server start` kept in `<data dir>/prefect/`: started
detached by the first process that needs it, under a file lock (eight processes starting at once
start one server), on a port chosen free at start and recorded in `server.json` there, so two
clones of the repository never share a server. Its state is a SQLite file in the same folder.
`booking-cron prefect status|start|stop` looks after it.

A Prefect API that does not answer is PrefectUnreachable: one line naming the URL, one saying
what to do (the CLI prints them instead of a traceback).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, overload

import httpx

from booking_cron import config

STATE_FILE = "server.json"
START_TIMEOUT = 180.0  # seconds a starting server may take to answer (two busy cores: about 10-30 s)
_settings_stack: list = []  # Prefect settings entered for the rest of the process (see use_api_url)


class PrefectUnreachable(RuntimeError):
    """The Prefect API did not answer. The message names the URL; `hint` says what to do."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Api:
    """The Prefect API a command uses and where that came from (said in the command's first line)."""

    url: str
    origin: str

    def describe(self) -> str:
        return f"Prefect API {self.url} ({self.origin})"


@dataclass(frozen=True)
class LocalServer:
    pid: int
    port: int
    folder: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def local_folder() -> Path:
    """`<data dir>/prefect`: beside the embedded PostgreSQL's cluster, one per clone."""
    return (config.data_dir() / "prefect").resolve()


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active Prefect profile (`prefect config set`), read without importing Prefect."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    return (profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL") or "").strip() or None


def explicit_api_url() -> str | None:
    """The Prefect API the operator named: PREFECT_API_URL in the environment, in Prefect's settings
    (when this process already set them), or in the active profile."""
    if url := (os.environ.get("PREFECT_API_URL") or "").strip():
        return url
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        if url := PREFECT_API_URL.value():
            return url
    return _profile_api_url()


def use_api_url(url: str) -> None:
    """Point this process's Prefect client at `url`: the environment (read when Prefect is
    imported) and, when Prefect is imported already, its settings for the rest of the process."""
    os.environ["PREFECT_API_URL"] = url
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        context = temporary_settings(updates={PREFECT_API_URL: url})
        context.__enter__()
        _settings_stack.append(context)


def answers(api_url: str, timeout: float = 3.0) -> bool:
    """Whether a Prefect API answers its health check at `api_url`."""
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def check_reachable(api: Api) -> None:
    """PrefectUnreachable, naming the URL, unless something answers there (any HTTP answer will do:
    Prefect Cloud's health check needs no 200 from us)."""
    try:
        httpx.get(f"{api.url.rstrip('/')}/health", timeout=5.0)
    except httpx.HTTPError as error:
        raise unreachable(api.url, error) from None


def unreachable(url: str, error: BaseException) -> PrefectUnreachable:
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", " ".join(str(error).split())) or type(error).__name__
    hint = ("start that Prefect server, fix PREFECT_API_URL, or unset it to use booking-cron's local "
            "Prefect server (booking-cron prefect start)")
    return PrefectUnreachable(f"cannot reach the Prefect API at {url}: {reason}", hint)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded(folder: Path | None = None) -> LocalServer | None:
    """The server `server.json` records, whether or not it still runs."""
    folder = folder or local_folder()
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        return LocalServer(int(state["pid"]), int(state["port"]), folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(folder: Path | None = None) -> LocalServer | None:
    """The local server, if its process is alive and its API answers."""
    server = recorded(folder)
    if server and _pid_alive(server.pid) and answers(server.api_url):
        return server
    return None


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_environment(folder: Path, port: int) -> dict[str, str]:
    """The local server's own settings: its home and SQLite database in `folder`, its UI talking to its port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(folder / "home"),
               PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
               PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL=os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"))
    return env


def start(folder: Path | None = None, timeout: float = START_TIMEOUT) -> tuple[LocalServer, bool]:
    """The local server, started detached unless it already runs; True when this call started it.
    Under the folder's lock: processes that come while it starts wait for it, then reuse it."""
    folder = folder or local_folder()
    with _locked(folder):
        if server := running(folder):
            return server, False
        earlier = recorded(folder)
        if earlier and _pid_alive(earlier.pid):
            # alive but slow to answer (a busy machine): wait for it rather than start a second one
            if _wait_until_answering(earlier, lambda: not _pid_alive(earlier.pid), timeout):
                return earlier, False
            _terminate(earlier.pid)  # it never answered: a hung server of ours
        port = _free_port()
        with open(folder / "server.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                cwd=folder, env=server_environment(folder, port), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)  # outlives this command; Ctrl-C here leaves it
        server = LocalServer(process.pid, port, folder)
        (folder / STATE_FILE).write_text(json.dumps({"pid": process.pid, "port": port, "started_at": time.time()}))
        if not _wait_until_answering(server, lambda: process.poll() is not None, timeout):
            _terminate(process.pid)
            (folder / STATE_FILE).unlink(missing_ok=True)
            raise PrefectUnreachable(
                f"the local Prefect server did not start on port {port} "
                + ("(it exited)" if process.poll() is not None else f"within {timeout:.0f} s"),
                f"see {folder / 'server.log'}; or set PREFECT_API_URL to a Prefect server")
        return server, True


def _wait_until_answering(server: LocalServer, gone, timeout: float) -> bool:
    """Whether the server's API answers within `timeout` seconds (False as soon as `gone()`)."""
    deadline = time.monotonic() + timeout
    while not answers(server.api_url, timeout=5.0):
        if gone() or time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def _terminate(pid: int, grace: float = 20.0) -> None:
    """SIGTERM to the server's process group, SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
                    return
            except ChildProcessError:
                pass
            if not _pid_alive(pid):
                return
            time.sleep(0.1)


def stop(folder: Path | None = None) -> LocalServer | None:
    """Stop the local server; returns the one that was recorded as running, None if none was."""
    folder = folder or local_folder()
    with _locked(folder):
        server = recorded(folder)
        if server and _pid_alive(server.pid):
            _terminate(server.pid)
        (folder / STATE_FILE).unlink(missing_ok=True)
        return server if server and not _pid_alive(server.pid) else None


@overload
def api(start_local: Literal[True] = True) -> Api: ...
@overload
def api(start_local: bool) -> Api | None: ...
def api(start_local: bool = True) -> Api | None:
    """The Prefect API this process uses, set for its Prefect client: PREFECT_API_URL if the operator
    named one, else the local server (started if need be; with start_local=False only one already
    running or that holds state). None only when start_local is False and there is no local server."""
    if url := explicit_api_url():
        return Api(url, "PREFECT_API_URL")
    folder = local_folder()
    server = running(folder)
    if server is None and (start_local or (folder / "prefect.db").exists()):
        server = start(folder)[0]
    if server is None:
        return None
    use_api_url(server.api_url)
    return Api(server.api_url, f"booking-cron's local server, UI {server.ui_url}")
