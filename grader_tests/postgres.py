"""A throw-away PostgreSQL server for the tests: Debian's `postgresql` package, run from a private folder,
listening on a Unix socket in that folder only (no TCP port at all), by an unprivileged user when the tests
run as root (PostgreSQL refuses to run as root), stopped and removed afterwards."""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NOBODY = 65534  # Debian's nobody / nogroup: the server's user when the tests run as root
SUPERUSER = "grader"


def server_programs():
    """The folder of initdb and pg_ctl (the newest PostgreSQL installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgres_server():
    """Start a server; yield a function that creates a database and returns its SQLAlchemy URL."""
    programs = server_programs()
    if programs is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    folder = Path(tempfile.mkdtemp(prefix="pg-"))  # /tmp itself: a test's own tmp_path is root's alone
    as_server = []
    if os.geteuid() == 0:
        os.chown(folder, NOBODY, NOBODY)
        as_server = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    data, socket = folder / "data", folder

    def run(*command, server=True):
        return subprocess.run([*(as_server if server else []), *map(str, command)], cwd=folder, check=True,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)

    def new_database(name):
        run(programs / "createdb", "-h", socket, "-U", SUPERUSER, name, server=False)
        return f"postgresql+psycopg://{SUPERUSER}@/{name}?host={socket}"

    try:
        try:
            run(programs / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8",
                "--locale=C")
            # durability is not wanted of a test's database: fsync off makes it fast
            options = f"-k {socket} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            run(programs / "pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", folder / "server.log",
                "-o", options)
        except subprocess.CalledProcessError as error:
            log = folder / "server.log"
            raise RuntimeError(f"{error.cmd} failed: {error.stderr}\n"
                               f"{log.read_text() if log.exists() else ''}") from error
        yield new_database
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_server, programs / "pg_ctl", "stop", "-w", "-m", "fast", "-D", data],
                           cwd=folder, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
