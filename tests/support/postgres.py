"""A throwaway PostgreSQL server for the tests and the benchmarks: Debian's `initdb` and `pg_ctl` in a
temporary folder, on a free port on 127.0.0.1 (and a unix socket in that folder), removed when stopped.

PostgreSQL refuses to run as root; as root the server runs as `nobody` (its folder handed to that user).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.ports import free_port

UNPRIVILEGED = "nobody"
# The params of a fixture that puts a store on either engine; the PostgreSQL case is an integration test.
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return Path(os.path.realpath(on_path[0])).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[-2]), reverse=True):
        if os.access(f"{folder}/initdb", os.X_OK) and os.access(f"{folder}/pg_ctl", os.X_OK):
            return Path(folder)
    return None


@contextmanager
def postgres_server(database: str = "supportbot", durable: bool = False) -> Iterator[str]:
    """Start a server, create `database`, yield its URL; stop the server and delete its files afterwards.
    Without fsync unless `durable` (PostgreSQL's own defaults, for benchmarks)."""
    binaries = find_binaries()
    if binaries is None:
        raise FileNotFoundError("PostgreSQL's initdb and pg_ctl were not found (on PATH or under "
                                "/usr/lib/postgresql/*/bin); install Debian's package: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="supportbot-pg-"))
    as_user: dict = {}
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED)
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    data, log, port = folder / "data", folder / "server.log", free_port()

    def run(*args: str) -> None:
        done = subprocess.run([str(binaries / args[0]), *args[1:]], capture_output=True, text=True,
                              cwd=folder, env={**os.environ, "LC_ALL": "C"}, **as_user)
        if done.returncode:
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{server_log}")

    started = False
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            *(() if durable else ("--no-sync",)))
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}" + ("" if durable else " -c fsync=off")
        run("pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options)
        started = True
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            run("pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w")
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server_url: str, name: str) -> str:
    """Create an empty database `name` on the server of `server_url`; returns its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url.rsplit('/', 1)[0]}/{name}"  # a URL of postgres_server: no query part
