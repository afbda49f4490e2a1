"""Warm kernels: grading kernels forked, with the libraries imported, from the kernel template.

As root, a kernel is not started but forked: the kernel template (KernelTemplate, running
template_process.py), a process that has imported the libraries once, joins each new sandbox's namespaces
and forks the kernel into it, which takes the sandbox's user id, limits and environment and gives up every
capability (ForkedKernel). While a notebook runs, the next kernel is forked into a sandbox of its own (the
spare), ready when asked for. A kernel of an assignment whose set-up cells the grading step names (Setup)
is forked from their snapshot instead, made on first use (template_process.py).
"""

import atexit
import contextlib
import hashlib
import json
import logging
import multiprocessing.util
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.connect import write_connection_file

from coursetools.grading.sandbox import CONNECTION_NAME, HOME, RUNTIME, bubblewrap, kernel_environment
from coursetools.grading.template_process import NAMESPACES

TEMPLATE_VARIABLE = "COURSE_KERNEL_TEMPLATE"  # the socket of the kernel template a grading run shares
# what the course's notebooks import, imported once by the kernel template (ipykernel: the kernel itself)
WARM_MODULES = ["numpy", "pandas", "scipy.special", "sklearn.datasets", "sklearn.linear_model",
                "sklearn.metrics", "sklearn.model_selection", "sklearn.neighbors", "sklearn.neural_network",
                "sklearn.tree", "matplotlib.pyplot", "ipykernel.kernelapp", "ipykernel.ipkernel",
                "ipykernel.zmqshell", "ipykernel.debugger"]
# what a sandbox runs while its forked kernel runs: it says when it is made (its namespaces can be joined),
# then waits on a life line whose other end only the kernel holds, so that it ends when the kernel does,
# and the kernel (in the sandbox's process namespace) when it does
FORKED_PLACEHOLDER = ["sh", "-c", "echo ready; exec cat"]


class KernelTemplate:
    """A kernel template: a process in a sandbox of its own that has imported the libraries once and forks
    a kernel into each new kernel sandbox, in a tenth of a second instead of seconds. It listens on a
    socket in a private folder of this user; it ends with the process that started it. `course grade`
    starts one for all its workers (TEMPLATE_VARIABLE); any other grading process starts its own on first
    use."""

    def __init__(self, modules=WARM_MODULES):
        self.folder = Path(tempfile.mkdtemp(prefix="lesson24-template-"))  # mode 0700
        self.path = self.folder / "socket"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(self.path))
        listener.listen(64)
        source = (Path(__file__).parent / "template_process.py").read_text()
        namespaces = ["--unshare-net", "--unshare-ipc", "--unshare-uts", "--cap-add", "ALL"]
        command = [*bubblewrap(namespaces, 64 * 1024**2, HOME), "--",
                   sys.executable, "-I", "-c", source, str(listener.fileno()), *modules]
        started = threading.Event()

        def run():  # a thread that lives as long as the template: bwrap ends its child with its parent thread
            self.process = subprocess.Popen(command, pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, start_new_session=True)
            started.set()
            self.process.wait()

        threading.Thread(target=run, name="kernel-template", daemon=True).start()
        started.wait()
        listener.close()
        atexit.register(self.stop)

    def stop(self):
        if os.environ.get(TEMPLATE_VARIABLE) == str(self.path):
            del os.environ[TEMPLATE_VARIABLE]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def share_template(modules):
    """Start a kernel template for the grading processes that this one starts, which find it through
    TEMPLATE_VARIABLE."""
    template = KernelTemplate(modules)
    os.environ[TEMPLATE_VARIABLE] = str(template.path)
    return template


class _TemplateConnection:
    """This process's connection to a kernel template: the shared one, else one of its own."""

    _current = None
    _own = None
    _lock = threading.Lock()

    def __init__(self, path):
        self.channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.channel.connect(str(path))
        self.channel.settimeout(120)  # the first answer waits for the template's imports on a busy machine
        self.broken = False
        self._asking = threading.Lock()  # one request at a time: a spare is forked from another thread

    @classmethod
    def get(cls, modules):
        with cls._lock:
            if cls._current is None or cls._current.broken:
                cls._current = None
                shared = os.environ.get(TEMPLATE_VARIABLE)
                if shared:
                    with contextlib.suppress(OSError):
                        cls._current = cls(shared)
                if cls._current is None:
                    if cls._own is None or cls._own.process.poll() is not None:
                        cls._own = KernelTemplate(modules)
                    cls._current = cls(cls._own.path)
            return cls._current

    @classmethod
    def ask_template(cls, modules, request, init, life):
        """Send `request` with the namespaces of the sandbox whose init process is `init` and its life
        line; return the answer. A template that ended is replaced (the connection to it broke before the
        request went)."""
        try:
            return cls.get(modules).ask(request, init, life)
        except OSError:
            return cls.get(modules).ask(request, init, life)

    def ask(self, request, init, life):
        namespaces = [os.open(f"/proc/{init}/ns/{name}", os.O_RDONLY) for name in NAMESPACES]
        try:
            with self._asking:
                socket.send_fds(self.channel, [json.dumps(request).encode()], [*namespaces, life])
                answer = json.loads(self.channel.recv(1 << 20) or b'{"error": "the kernel template ended"}')
        except OSError:
            self.broken = True
            raise
        finally:
            for fd in namespaces:
                os.close(fd)
        if "error" in answer:
            if answer.get("missing"):
                raise SnapshotMissing(answer["error"])
            self.broken = answer["error"] == "the kernel template ended"
            raise RuntimeError(f"the kernel template could not do it: {answer['error']}")
        return answer


class SnapshotMissing(RuntimeError):
    """The template holds no snapshot of that key (not made yet, or ended)."""


@dataclass(frozen=True)
class Setup:
    """The instructor's set-up cells of an assignment: its read-only cells before the first cell of the
    student's, the same for every student. Run once in a snapshot (template_process.py), from which the
    assignment's kernels are forked. `key` names the cells, the course's test helpers (`prelude`, which
    they import) and the assignment's files they run beside."""

    key: str
    cells: tuple
    prelude: str

    @classmethod
    def of(cls, cells, prelude):
        cells = tuple(cells)  # the manager adds the assignment's files to the key
        return cls(hashlib.sha256(json.dumps([cells, prelude]).encode()).hexdigest(), cells, prelude)


_failed_setups = set()  # keys of set-ups whose snapshot could not be made here: their cells run in kernels


class ForkedKernel:
    """A kernel forked from the kernel template into `sandbox`, which is launched for it and runs
    FORKED_PLACEHOLDER beside it (`process`, ending with the kernel); its connection is `info`. The sandbox
    is released if the kernel cannot be made.

    With a `setup` (and `setup_sandbox`, which makes a sandbox that holds the assignment's own files), the
    kernel is forked from the set-up's snapshot, made first if need be; `outputs` is then what each
    set-up cell printed (None for a kernel that must run them itself)."""

    def __init__(self, sandbox, modules, setup=None, setup_sandbox=None):
        self.sandbox, self.outputs = sandbox, None
        self._setup, self._setup_sandbox = setup, setup_sandbox
        try:
            manager_view = {"transport": "ipc", "ip": str(sandbox.runtime / "kernel-ipc"),
                            "key": str(uuid.uuid4()).encode(), "signature_scheme": "hmac-sha256"}
            _, info = write_connection_file(str(sandbox.connection_file), **manager_view)
            self.info = {**info, "key": manager_view["key"]}
            sandbox.write_kernel_view(self.info)
            self.process, ready_read, life = _launch(sandbox)
            self.pid = self._fork(ready_read, life, modules)
        except BaseException:
            sandbox.release()
            raise

    def _fork(self, ready_read, life, modules):
        """Fork the kernel from the template into the sandbox once it is ready; return the kernel's pid.
        Closes both ends; kills the sandbox if anything fails."""
        try:
            _wait_until_ready(ready_read, 30, self.process)
            init = _init_of(self.process)
            request = {"uid": self.sandbox.uid, "cwd": str(self.sandbox.notebook),
                       "limits": self.sandbox.limits.rlimits(), "environment": kernel_environment(),
                       "connection_file": str(RUNTIME / CONNECTION_NAME)}
            answer = self._from_snapshot(modules, request, init, life) if self._setup else None
            if answer is None:
                answer = _TemplateConnection.ask_template(modules, request, init, life)
            kernel, self.outputs = answer["pid"], answer.get("outputs")
            self.sandbox.join_cgroups(kernel)
            _end_with(self.process, kernel)
            return kernel
        except BaseException:
            self.process.kill()
            raise
        finally:
            os.close(ready_read)
            os.close(life)

    def _from_snapshot(self, modules, request, init, life):
        """The template's answer to a request for a kernel forked from the set-up's snapshot (made first
        if the template has none), or None where no snapshot can be made (the kernel runs the cells)."""
        request = {**request, "snapshot": self._setup.key}
        for _ in range(2):
            if self._setup.key in _failed_setups:
                return None
            try:
                return _TemplateConnection.ask_template(modules, request, init, life)
            except SnapshotMissing:
                try:
                    _make_snapshot(self._setup, self._setup_sandbox(), modules)
                except Exception as error:
                    _failed_setups.add(self._setup.key)
                    logging.getLogger(__name__).warning(
                        "the set-up cells run in every kernel: no snapshot of them (%s)", error)
        return None

    def discard(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.sandbox.release()


def _make_snapshot(setup, sandbox, modules):
    """Have the template make the snapshot of `setup`, its cells running beside the assignment's files in
    `sandbox` (released when the snapshot is made: the snapshot keeps what it needs in memory)."""
    process = None
    try:
        process, ready_read, life = _launch(sandbox)
        try:
            _wait_until_ready(ready_read, 30, process)
            request = {"make_snapshot": setup.key, "prelude": setup.prelude, "cells": list(setup.cells),
                       "cwd": str(sandbox.notebook), "environment": kernel_environment()}
            _TemplateConnection.ask_template(modules, request, _init_of(process), life)
        finally:
            os.close(ready_read)
            os.close(life)
    finally:
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        sandbox.release()


def _launch(sandbox):
    """Launch `sandbox` running FORKED_PLACEHOLDER; return its process, the end of the pipe on which it
    says it is ready, and the other end of its life line."""
    life_read, life = os.pipe()
    ready_read, ready = os.pipe()
    try:
        process = subprocess.Popen(sandbox.command(FORKED_PLACEHOLDER), stdin=life_read,
                                   stdout=ready, stderr=subprocess.DEVNULL, start_new_session=True)
    except BaseException:
        os.close(ready_read)
        os.close(life)
        raise
    finally:
        os.close(life_read)
        os.close(ready)
    return process, ready_read, life


def _init_of(process):
    """The process id of the init process of a sandbox launched as `process` (bwrap's child)."""
    return int(Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()[0])


def _wait_until_ready(fd, timeout, process):
    """Wait for a line on the pipe `fd` from `process`; raise if it ends or the time is up first."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"the kernel sandbox was not ready within {timeout} s")
        if select.select([fd], [], [], min(left, 0.5))[0]:
            if not os.read(fd, 64):
                raise RuntimeError(f"the kernel sandbox ended before it was ready ({process.poll()})")
            return


def _end_with(sandbox, pid):
    """End the sandbox process when its forked kernel ends, as a sandbox whose kernel was started anew
    does: a process that the kernel forked could otherwise hold the life line, so the sandbox, open."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:  # it ended already
        handle = None

    def watch():
        if handle is not None:
            select.select([handle], [], [])
            os.close(handle)
        if sandbox.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sandbox.pid, signal.SIGKILL)

    threading.Thread(target=watch, name="kernel-end", daemon=True).start()


class _SpareSlot:
    """This process's spare: a ForkedKernel made before it is asked for, while the notebook before runs,
    for a notebook in a folder of the same name with the same limits (its `signature`). The manager that
    takes it fills the sandbox's copy of the notebook's folder, then talks to the kernel."""

    def __init__(self):
        self.ready = None  # (signature, ForkedKernel), once made
        self.making = False
        self.cleanup_in = None  # the process whose exit ends its spare
        self.lock = threading.Lock()

    def prepare(self, signature, make, log):
        """Make the spare with `make` in a thread of its own, unless one is there or being made."""
        with self.lock:
            if self.ready is not None or self.making:
                return
            self.making = True
            if self.cleanup_in != os.getpid():
                self.cleanup_in = os.getpid()
                atexit.register(self.discard)
                # a grading worker ends through multiprocessing, which runs its finalizers, not atexit's
                multiprocessing.util.Finalize(None, self.discard, exitpriority=10)

        def run():  # the thread lives as long as the sandbox: bwrap ends with the thread that started it
            try:
                kernel = make()
            except Exception as error:  # no spare: the next kernel is forked when asked for
                log.warning("could not prepare a spare kernel: %s", error)
                return
            finally:
                with self.lock:
                    self.making = False
            with self.lock:
                self.ready = ready = (signature, kernel)
            kernel.process.wait()
            with self.lock:  # ended before anyone took it: its sandbox is nobody else's to release
                untaken = self.ready is ready
                if untaken:
                    self.ready = None
            if untaken:
                kernel.sandbox.release()

        threading.Thread(target=run, name="spare-kernel", daemon=True).start()

    def take(self, signature):
        """The spare if it fits `signature` and its kernel runs (None otherwise; a spare that does not fit
        is ended)."""
        with self.lock:
            ready, self.ready = self.ready, None
        if ready is None:
            return None
        made_for, kernel = ready
        if made_for == signature and kernel.process.poll() is None:
            return kernel
        kernel.discard()
        return None

    def discard(self):
        """End the spare (at the process's exit), waiting a moment for one that is being made."""
        for _ in range(100):
            with self.lock:
                if not self.making:
                    ready, self.ready = self.ready, None
                    break
            time.sleep(0.1)
        else:
            return
        if ready is not None:
            ready[1].discard()


_spare = _SpareSlot()
prepare_spare, take_spare = _spare.prepare, _spare.take


def spare_ready():
    """Whether this process has a spare kernel ready for the next notebook."""
    return _spare.ready is not None
