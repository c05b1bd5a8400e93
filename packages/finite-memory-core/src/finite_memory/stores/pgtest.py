"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` and ``pg_ctl`` in a temporary folder.

::

    with TemporaryPostgres() as server:
        store = open_store(server.url + "?schema=t1")
        ...
        server.restart(mode="immediate")  # a crash and recovery in the middle of a run

It needs PostgreSQL's server binaries (Debian: ``apt-get install postgresql``), found on
``PATH`` or under ``/usr/lib/postgresql/*/bin``. It listens on 127.0.0.1 only, on a free
port, with password authentication. Run as root it runs the server as the ``postgres``
user (or ``nobody``), since PostgreSQL refuses to run as root. Stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pwd

#: The superuser the server is created with, and its password.
USER = "fm"
PASSWORD = "fm-test-password"


def find_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; ``FileNotFoundError`` naming the package when missing."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    raise FileNotFoundError(
        "PostgreSQL's server binaries (initdb, pg_ctl) are not installed; "
        "on Debian or Ubuntu: apt-get install postgresql"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL server in a temporary folder, removed by :meth:`close`.

    Args:
        fsync: ``False`` (the default) skips fsync for speed: a crash of the *server*
            (``kill -9``, ``restart(mode="immediate")``) loses nothing committed, only a
            crash of the machine could. Benchmarks that measure durable commits pass ``True``.
        settings: extra server settings (``{"max_connections": 300}``).
    """

    def __init__(self, *, fsync: bool = False, settings: dict[str, Any] | None = None) -> None:
        self.bin = find_binaries()
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="fm-postgres-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": "",
            "fsync": "on" if fsync else "off",
            "max_connections": 300,
            "shared_buffers": "32MB",
            **(settings or {}),
        }
        self._user = self._run_as()
        if self._user is not None:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        pwfile = self.folder / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        self._call(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        self.start()

    @property
    def url(self) -> str:
        """``postgresql://fm:<password>@127.0.0.1:<port>/postgres``."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return None
        import pwd  # POSIX only, like running as root

        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise RuntimeError("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")

    def _call(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self._user is not None:
            extra = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.folder,
            check=False,
            **extra,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = " ".join(f"-c {key}={value if value != '' else repr('')}" for key, value in self.settings.items())
        self._call("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean), or ``immediate`` (as in a crash: recovery runs at the next start)."""
        self._call("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode: str = "immediate") -> None:
        """Stop (by default as in a crash) and start again at once."""
        self.stop(mode)
        self.start()

    def kill(self) -> None:
        """``kill -9`` the postmaster; its children exit by themselves. :meth:`start` recovers."""
        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self._call("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the killed PostgreSQL server did not go away")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        if self.data.exists():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
