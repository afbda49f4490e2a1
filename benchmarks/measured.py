"""The record of a benchmark run: what a benchmark prints is also written to docs/measured/<benchmark>.md,
with what was measured, the command that repeats it, the date and the machine, so that the docs can link
figures that change with every measurement instead of copying them.

    if __name__ == "__main__":
        with measured.recorded(__file__, __doc__):
            main()

The load average is taken before the benchmark starts and again at its end: on a busy machine every
figure is slower, and the record shows it. A run that fails writes nothing.
"""

import contextlib
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "docs" / "measured"


class Tee:
    """A stdout that also keeps what was written."""

    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text):
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def machine():
    """Facts about the machine that a reader needs to weigh the figures."""
    model = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor() or "unknown")
    kilobytes = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                      if line.startswith("MemTotal")), None)
    memory = f"{kilobytes / 1024**2:.1f} GiB" if kilobytes else "unknown"
    return {"CPUs": f"{os.cpu_count()} ({model})", "memory": memory,
            "system": f"{platform.system()} {platform.release()}", "Python": platform.python_version()}


def _lines(path):
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def commit():
    """The commit measured, and whether the working tree had changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no")
                   else "")


def load():
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def page(name, description, command, started, start_load, end_load, output):
    facts = {"command": f"`{command}`", "date": started.strftime("%Y-%m-%d %H:%M UTC"), "code": commit(),
             **machine(), "load average at the start (1, 5, 15 min)": start_load,
             "load average at the end": end_load}
    return "\n".join([
        f"# Measured: {name}",
        "",
        "Written by the benchmark itself on its last run; run the command again to replace it.",
        "",
        "## What was measured",
        "",
        description.strip(),
        "",
        "## The run",
        "",
        *[f"- {key}: {value}" for key, value in facts.items()],
        "",
        "## What it printed",
        "",
        "```",
        output.rstrip("\n"),
        "```",
        "",
    ])


@contextlib.contextmanager
def recorded(script, description):
    """Run the body with its printed output kept, then write docs/measured/<script's name>.md."""
    name = Path(script).stem
    command = shlex.join([".venv/bin/python", f"benchmarks/{Path(script).name}", *sys.argv[1:]])
    started, start_load = datetime.now(timezone.utc), load()
    tee = Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield
    MEASURED.mkdir(parents=True, exist_ok=True)
    target = MEASURED / f"{name}.md"
    target.write_text(page(name, description, command, started, start_load, load(), "".join(tee.parts)))
    print(f"written: {target.relative_to(ROOT)}")
