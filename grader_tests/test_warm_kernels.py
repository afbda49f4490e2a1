"""Kernels forked from the kernel template pass nothing to each other or back to the template.

Each test starts grading kernels the way grading does (GradingKernelManager, this process's template) with
user ids of this test session's own. An attacking kernel changes a library module, writes files, leaves
threads, processes and a secret in its memory behind; a kernel started after it, or beside it, must find
none of it, see none of its processes, and hold no capability.
"""

import asyncio
import json
import os
import secrets
import signal
import tempfile
from pathlib import Path

import pytest
from conftest import private_uids
from traitlets.config import Config

from coursetools.grading import warm_kernels
from coursetools.grading.kernel import GradingKernelManager
from coursetools.grading.sandbox import Limits, Sandbox, sandbox_disabled, sandbox_missing

pytestmark = [pytest.mark.skipif(
    os.geteuid() != 0 or bool(sandbox_missing()) or sandbox_disabled(),
    reason="warm kernels are forked as root, into the sandbox"), pytest.mark.xdist_group("warm")]

MARK = "warm-" + "leak-"  # what the attacker writes before its secret, split so this file holds no copy

ATTACK = '''
import numpy, os, subprocess, sys, threading, time
numpy.mean = lambda *args, **kwargs: 42  # a library module changed in memory
try:
    open(numpy.__file__, "a").write("raise SystemExit\\n")  # and on disk
    print("WROTE numpy")
except OSError:
    pass
for folder in ("/tmp", "/dev/shm", os.path.expanduser("~"), os.path.expanduser("~/.cache")):
    with open(os.path.join(folder, "left-behind"), "w") as file:
        file.write("{secret}")
os.environ["LEFT_BEHIND"] = "{secret}"
sys.modules["left_behind"] = type(sys)("left_behind")
threading.Thread(target=time.sleep, args=(600,), name="left-behind").start()
subprocess.Popen(["sleep", "600"])
_kept = [("{mark}" + "{secret}").encode() * 1000 for _ in range(100)]  # a secret in memory
print(os.getpid())
'''

PROBE = '''
import json, numpy, os, re, sys, threading
found = {{}}
found["mean"] = float(numpy.mean([1.0, 2.0]))
folders = ("/tmp", "/dev/shm", os.path.expanduser("~"), os.path.expanduser("~/.cache"))
found["files"] = [path for folder in folders for path in [os.path.join(folder, "left-behind")]
                  if os.path.exists(path)]
found["environment"] = "LEFT_BEHIND" in os.environ
found["module"] = "left_behind" in sys.modules
found["threads"] = sorted(thread.name for thread in threading.enumerate())
found["pids"] = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
found["commands"] = sorted(open(f"/proc/{{pid}}/cmdline", "rb").read().split(b"\\0")[0].decode()
                           for pid in found["pids"] if os.path.exists(f"/proc/{{pid}}/cmdline"))
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
keys = ("Uid", "CapEff", "CapPrm", "CapBnd", "CapInh", "NoNewPrivs")
found["status"] = {{key: status[key].strip() for key in keys}}
pattern = re.compile(re.escape("{mark}".encode()) + rb"([0-9a-f]{{32}})")
secrets_seen = set()
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as memory:
    for line in maps:
        parts = line.split()
        if not parts[1].startswith("r") or (len(parts) > 5 and parts[5].startswith("[v")):
            continue
        start, end = (int(value, 16) for value in parts[0].split("-"))
        try:
            memory.seek(start)
            secrets_seen.update(match.decode() for match in pattern.findall(memory.read(end - start)))
        except (OSError, OverflowError, ValueError):
            continue
found["secrets"] = sorted(secrets_seen)
print(json.dumps(found))
'''


async def spare_made():
    """Wait until this process's spare kernel is made (grading makes it while a notebook runs)."""
    for _ in range(300):
        if warm_kernels.spare_ready():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no spare kernel was made")


async def start(work, **options):
    config = Config()
    config.GradingKernelManager.first_uid = private_uids().start
    for name, value in options.items():
        setattr(config.GradingKernelManager, name, value)
    manager = GradingKernelManager(config=config)
    await manager.start_kernel(cwd=str(work))
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return manager, client


async def run(client, code):
    printed = []

    def keep(message):
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            printed.append(f"ERROR {message['content']['ename']}: {message['content']['evalue']}")

    await client.execute_interactive(code, timeout=120, output_hook=keep)
    return "".join(printed)


async def stop(manager, client):
    client.stop_channels()
    await manager.shutdown_kernel(now=False)


def printed_by_one_kernel(work, code, **options):
    """What `code` printed in a grading kernel started for `work` with `options`, then shut down."""

    async def scenario():
        manager, client = await start(work, **options)
        printed = await run(client, code)
        await stop(manager, client)
        return printed

    return asyncio.run(scenario())


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    """What an honest kernel found beside an attacking kernel that is still running, and after it ended,
    with the attacker's secret; and what a kernel found before any attack, for comparison."""
    work = tmp_path_factory.mktemp("warm")
    (work / "data.csv").write_text("x\n1\n")
    secret = secrets.token_hex(16)

    async def scenario():
        manager, client = await start(work)
        before = json.loads(await run(client, PROBE.format(mark=MARK)))
        await stop(manager, client)
        await spare_made()
        attacker, attacker_client = await start(work)
        attack_output = await run(attacker_client, ATTACK.format(secret=secret, mark=MARK))
        await spare_made()  # made while the attacker runs
        manager, client = await start(work)
        beside = json.loads(await run(client, PROBE.format(mark=MARK)))
        spares = [manager._from_spare]
        await stop(manager, client)
        await stop(attacker, attacker_client)
        await spare_made()
        manager, client = await start(work)
        after = json.loads(await run(client, PROBE.format(mark=MARK)))
        spares.append(manager._from_spare)
        await stop(manager, client)
        return before, attack_output, beside, after, spares

    before, attack_output, beside, after, spares = asyncio.run(scenario())
    return {"before": before, "attack": attack_output, "beside": beside, "after": after, "secret": secret,
            "spares": spares}


def test_the_honest_kernels_were_spares_made_beside_the_attacker(probes):
    assert probes["spares"] == [True, True]


def test_a_spare_serves_only_a_folder_of_its_name(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "data.csv").write_text("x\n1\n")

    async def scenario():
        manager, client = await start(tmp_path / "one")
        await stop(manager, client)
        await spare_made()  # for a folder named "one"
        manager, client = await start(tmp_path / "two")
        printed = await run(client, "import os; print(os.path.basename(os.getcwd()), sorted(os.listdir()))")
        from_spare = manager._from_spare
        await stop(manager, client)
        await spare_made()  # for "two", from now on
        manager, client = await start(tmp_path / "two")
        printed += await run(client, "import os; print(os.path.basename(os.getcwd()), sorted(os.listdir()))")
        from_spare_next = manager._from_spare
        await stop(manager, client)
        return printed, from_spare, from_spare_next

    printed, from_spare, from_spare_next = asyncio.run(scenario())
    assert not from_spare and from_spare_next
    assert printed.splitlines() == ["two ['data.csv']"] * 2  # the spare's copy of the folder is filled


def test_the_attack_ran(probes):
    assert probes["attack"].strip().isdigit(), probes["attack"]  # every step ran; numpy's file is read-only
    assert "WROTE" not in probes["attack"]


@pytest.mark.parametrize("when", ["beside", "after"])
def test_nothing_of_one_kernel_reaches_another(probes, when):
    found, before = probes[when], probes["before"]
    assert found["mean"] == 1.5  # numpy as the library has it
    assert found["files"] == []
    assert not found["environment"] and not found["module"]
    assert found["threads"] == before["threads"]
    assert probes["secret"] not in found["secrets"]
    assert found["commands"] == before["commands"]  # the sandbox's own: its init, its `cat`, the kernel


def test_the_memory_scan_finds_a_secret_where_there_is_one(probes):
    """The probe's scan of its memory would see the secret: run in the attacker's kernel, it does."""

    async def scenario(work):
        manager, client = await start(work)
        await run(client, ATTACK.format(secret=probes["secret"], mark=MARK))
        found = json.loads(await run(client, PROBE.format(mark=MARK)))
        await stop(manager, client)
        return found

    with tempfile.TemporaryDirectory() as work:
        found = asyncio.run(scenario(Path(work)))
    assert probes["secret"] in found["secrets"]
    assert found["files"] and found["environment"] and "left-behind" in found["threads"]


def test_a_forked_kernel_is_a_sandboxed_kernel(probes):
    status = probes["after"]["status"]
    uid = int(status["Uid"].split()[0])
    assert uid in private_uids() and status["Uid"].split() == [str(uid)] * 4
    assert {status[key] for key in ("CapEff", "CapPrm", "CapBnd", "CapInh")} == {"0" * 16}
    assert status["NoNewPrivs"] == "1"
    assert len(probes["after"]["pids"]) == 3  # the sandbox's init, its `cat`, the kernel: nothing else


def own_template():
    """This process's own kernel template (these tests start kernels as `nbgrader autograde` does)."""
    warm_kernels._TemplateConnection.get(warm_kernels.WARM_MODULES)
    return warm_kernels._TemplateConnection._own


def test_the_template_shares_no_writable_memory_and_holds_no_course_file():
    pid = own_template().process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    python = int(children[0]) if children else pid  # bwrap's child is the template's Python
    maps = Path(f"/proc/{python}/maps").read_text().splitlines()
    assert not [line for line in maps if line.split()[1].startswith("rw") and line.split()[1][3] == "s"]
    opened = {os.readlink(f"/proc/{python}/fd/{fd}") for fd in os.listdir(f"/proc/{python}/fd")}
    root = str(Path(__file__).resolve().parent.parent)
    assert not [path for path in opened if path.startswith(root)]
    assert len(os.listdir(f"/proc/{python}/task")) == 1  # one thread: forking it is safe


def test_a_template_that_ended_is_started_again(tmp_path):
    template = own_template()
    os.killpg(template.process.pid, signal.SIGKILL)
    template.process.wait(timeout=10)
    assert printed_by_one_kernel(tmp_path, "print(6 * 7)").strip() == "42"


def test_a_kernel_starts_cold_when_asked(tmp_path):
    printed = printed_by_one_kernel(tmp_path, "import sys; print('numpy' in sys.modules)", warm=False)
    assert printed.strip() == "False"


def test_a_kernel_that_ends_ends_its_sandbox_whatever_it_forked(tmp_path):
    """A child that the kernel forked holds the sandbox's life line: the sandbox ends with the kernel all
    the same, as one whose kernel was started anew does."""

    async def scenario():
        manager, client = await start(tmp_path)
        await run(client, "import os, time\nif os.fork() == 0:\n    time.sleep(600)")
        client.execute("import os; os._exit(1)")
        for _ in range(100):
            if not await manager.is_alive():
                break
            await asyncio.sleep(0.1)
        alive = await manager.is_alive()
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
        return alive

    assert asyncio.run(scenario()) is False


def test_a_forked_kernel_finds_its_connection_file_whole(tmp_path, monkeypatch):
    """A forked kernel reads its connection file as soon as it is forked: the manager writes that file
    once, before the fork, and never again while the kernel may be reading it."""
    written = []
    write = Sandbox.write_kernel_view
    monkeypatch.setattr(Sandbox, "write_kernel_view",
                        lambda self, info: (written.append(self), write(self, info)))
    assert printed_by_one_kernel(tmp_path, "print(6 * 7)", spare=False).strip() == "42"
    assert len(written) == 1


def test_a_connection_file_is_replaced_whole(tmp_path):
    """A reader of the kernel's connection file sees the old file or the new one, never a part of one."""
    sandbox = Sandbox.claim(private_uids().start, len(private_uids()), "work", Limits(0, 64, 60, 1024, 1024))
    try:
        sandbox.write_kernel_view({"key": "old", "shell_port": 1})
        with open(sandbox.runtime / "kernel.json") as reader:
            sandbox.write_kernel_view({"key": "new" * 1000, "shell_port": 2})
            assert json.loads(reader.read())["key"] == "old"
        assert json.loads((sandbox.runtime / "kernel.json").read_text())["shell_port"] == 2
    finally:
        sandbox.release()
