"""Real servers for tests and benchmarks: a PostgreSQL server and an S3 server (moto).

`PostgresServer` runs ``initdb`` + ``pg_ctl`` into a temporary directory and listens on a
free port of 127.0.0.1 with password authentication over TCP; as root (CI) both run as the
unprivileged ``postgres`` user, because PostgreSQL refuses to run as root. `S3Server` is moto's
threaded server on a free port of 127.0.0.1. Both are started once per test session by the
fixtures in ``tests/conftest.py`` and stopped at its end; ``bench`` starts its own.
`server_unavailable` says why one cannot start here (the tests then skip with that reason;
``.ci/run`` installs what they need).

A killed test run (SIGKILL, a CI timeout) never reaches the fixtures' teardown, and ``pg_ctl``
daemonizes the server: it would run forever. So `PostgresServer.start` first starts a watchdog
(`start_watchdog`), a tiny Python process in a session of its own that polls whether the process
that started it is still its parent (every 0.2 s); once that process is gone it stops the server
(``pg_ctl stop -m immediate``, again if a start under way finishes later) and deletes its
directory. moto's server is a thread of the test process: it ends with it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "PostgresServer",
    "S3Server",
    "free_port",
    "postgres_bin_dir",
    "server_unavailable",
    "start_watchdog",
    "stop_with_this_process",
    "stopped_with_this_process",
]

#: Credentials of the throw-away servers (moto accepts any).
PG_USER = "skyquanta"
PG_PASSWORD = "test-" + uuid.uuid4().hex[:12]
S3_KEY, S3_SECRET = "testing-key", "testing-secret"


#: The watchdog's program (``python -c WATCHDOG SPEC``): see `start_watchdog`.
_WATCHDOG = """
import json, os, shutil, subprocess, sys, time
spec = json.loads(sys.argv[1])
while os.getppid() == spec["parent"]:
    time.sleep(spec["every"])
pidfile = spec["pidfile"]
quiet_since = None
deadline = time.monotonic() + spec["settle"]
while time.monotonic() < deadline:
    if not pidfile or os.path.exists(pidfile):
        quiet_since = None
        try:
            subprocess.run(spec["stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        except Exception:
            pass
        if not pidfile:
            break
    elif quiet_since is None:
        quiet_since = time.monotonic()
    elif time.monotonic() - quiet_since > spec["quiet"]:
        break
    time.sleep(0.2)
for path in spec["remove"]:
    shutil.rmtree(path, ignore_errors=True)
"""


def start_watchdog(
    stop: list[str], *, pidfile: str = "", remove: tuple[str, ...] = (), every: float = 0.2
) -> subprocess.Popen:
    """Start a process that runs ``stop`` once this process has died.

    It polls every ``every`` seconds whether this process is still its parent (no PID can be
    reused for that), in a session of its own (a signal to the test run's process group does
    not reach it). With ``pidfile`` (a server's PID file), ``stop`` is run again whenever the
    file exists, until it has been absent for 3 s (a start under way when the parent died
    finishes after the first stop); then the ``remove`` directories are deleted.

    Parameters
    ----------
    stop : `list` [`str`]
        The command that stops the server.
    pidfile : `str`
        The server's PID file ("" to run ``stop`` once).
    remove : `tuple` [`str`, ...]
        Directories to delete afterwards.
    every : `float`
        Seconds between two looks at the parent.

    Returns
    -------
    watchdog : `subprocess.Popen`
        Kill it (and wait for it) when the server is stopped the normal way.
    """
    spec = {
        "parent": os.getpid(),
        "stop": stop,
        "pidfile": pidfile,
        "remove": list(remove),
        "every": every,
        "quiet": 3.0,
        "settle": 70.0,  # longer than pg_ctl's start timeout (-t 60)
    }
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, json.dumps(spec)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_with_this_process(pids: list[int]) -> subprocess.Popen:
    """Start a watchdog that sends SIGTERM to ``pids`` once this process has died.

    The ``pids`` are servers started as subprocesses (e.g. a dask scheduler and its workers).
    Kill the returned watchdog (and wait for it) once they are stopped the normal way. The
    processes are signalled at once (0.2 s) after this one died, while they still run: their
    process IDs cannot have been reused yet.
    """
    return start_watchdog(["kill", "-TERM", *(str(pid) for pid in pids)])


@contextlib.contextmanager
def stopped_with_this_process(pids: list[int]) -> Iterator[None]:
    """Within the block, ``pids`` get SIGTERM should this process die (`stop_with_this_process`)."""
    watchdog = stop_with_this_process(pids)
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """Return the folder of ``initdb`` and ``pg_ctl`` (PATH, then Debian's layout)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parents[1].name) if Path(p).parents[1].name.isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def server_unavailable(kind: str) -> str | None:
    """Return why a ``postgres`` or ``s3`` server cannot run here, or `None` if it can."""
    if kind == "postgres":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "psycopg is not installed (pip install -e '.[postgres]')"
        if postgres_bin_dir() is None:
            return "PostgreSQL's initdb/pg_ctl not found (.ci/ensure_postgresql installs them)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no 'postgres' user to run the server"
        return None
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (pip install -e '.[test]')"
    return None


class PostgresServer:
    """A PostgreSQL server of its own, in a temporary directory.

    Attributes
    ----------
    host, port, user, password : `str`, `int`, `str`, `str`
        Where it listens and its superuser (password authentication over TCP).
    """

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.host, self.port = "127.0.0.1", free_port()
        self.user, self.password = PG_USER, PG_PASSWORD
        self.dir = Path(tempfile.mkdtemp(prefix="skyquanta-pg-"))
        self._as_user: list[str] = []
        self._watchdog: subprocess.Popen | None = None
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, capture_output=True, text=True, timeout=120
        )

    def start(self) -> None:
        """Initialize the data directory and start the server (waits until it accepts)."""
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_user:
            shutil.chown(pwfile, "postgres")
        data = self.dir / "data"
        # before anything is started: whatever of it runs when this process dies is stopped
        self._watchdog = start_watchdog(
            [*self._as_user, *self._stop_command()],
            pidfile=str(data / "postmaster.pid"),
            remove=(str(self.dir),),
        )
        try:
            self._run(
                str(self.bin / "initdb"), "-D", str(data), "-U", self.user,
                f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                "-E", "UTF8", "--no-sync",
            )
            options = (
                f"-p {self.port} -c listen_addresses={self.host} -k {self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60",
                "-l", str(self.dir / "log"), "start",
            )
        except subprocess.CalledProcessError as err:
            log = self.dir / "log"
            detail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {err.stderr}{detail}") from err
        finally:
            pwfile.unlink(missing_ok=True)

    def _stop_command(self) -> list[str]:
        return [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                "-w", "stop"]

    def stop(self) -> None:
        """Stop the server, stop its watchdog, and have its directory deleted in the background.

        The deletion is left to an ``rm -rf`` that runs on after this returns (and after this
        process ends): a test session's few dozen databases are ~40,000 files, and deleting
        them took 12-37 s at the end of the suite on a busy disk. The server is stopped first,
        so nothing writes there any more.
        """
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(*self._stop_command())
        with contextlib.suppress(OSError):  # the shell starts rm in the background and exits
            subprocess.run(
                ["sh", "-c", 'rm -rf -- "$1" </dev/null >/dev/null 2>&1 &', "sh", str(self.dir)],
                check=False,
                timeout=30,
            )
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """Return the SQLAlchemy URL of ``database`` (with or without the password)."""
        secret = f":{self.password}" if password else ""
        return f"postgresql+psycopg://{self.user}{secret}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a new empty database; return its name."""
        import psycopg

        name = name or f"db_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname="postgres", autocommit=True,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


class S3Server:
    """moto's S3 server on 127.0.0.1, with a fresh bucket per `new_bucket` call."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._fs = None

    def start(self) -> None:
        """Start the server in a thread of this process."""
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.stop()

    @property
    def env(self) -> dict[str, str]:
        """Environment that points boto/s3fs at this server (for subprocesses too)."""
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    @property
    def storage_options(self) -> dict[str, object]:
        """Return the fsspec storage options for ``s3://`` URLs on this server (no credentials)."""
        return {"endpoint_url": self.endpoint_url}

    def filesystem(self):
        """Return an ``s3fs.S3FileSystem`` on this server (made once: a session costs ~1 s)."""
        import s3fs

        if self._fs is None:
            self._fs = s3fs.S3FileSystem(
                key=S3_KEY, secret=S3_SECRET, endpoint_url=self.endpoint_url
            )
        return self._fs

    def new_bucket(self) -> str:
        """Create an empty bucket; return its name."""
        name = f"b-{uuid.uuid4().hex[:16]}"
        self.filesystem().mkdir(name)
        return name


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
