"""The kernel manager of every grading kernel (nbgrader_config.py names it): the sandbox and the limits.

Each grading kernel runs in a sandbox of its own (coursetools/grading/sandbox.py: bubblewrap, a user id
of its own, rlimits and cgroups); as root it is not started but forked from the kernel template
(coursetools/grading/warm_kernels.py), or was forked while the notebook before ran (the spare). The
kernel talks to nbclient over ZMQ `ipc` sockets in its runtime folder (TCP cannot cross the network
namespace), and is interrupted by a message, not a signal.

Outside the sandbox this manager kills a kernel, with every process it started, once it has lived for
`notebook_timeout` seconds (nbgrader limits each cell, not a whole notebook), and after the kernel has
ended it kills and counts any process that the kernel's user left behind.

Setting the environment variable COURSE_NO_SANDBOX=1 runs kernels without the sandbox (for a machine
without bubblewrap): student code then runs with the grader's rights, and every kernel start says so.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async
from nbgrader.coursedir import CourseDirectory
from traitlets import Bool, DottedObjectName, Float, Integer, List, Type, Unicode

from coursetools.course import read_tree
from coursetools.findings import Finding
from coursetools.grading.sandbox import (
    CONNECTION_NAME,
    NO_SANDBOX_VARIABLE,
    RUNTIME,
    Limits,
    Sandbox,
    memory_rlimits,
    prlimit,
    sandbox_disabled,
    sandbox_missing,
)
from coursetools.grading.warm_kernels import (
    TEMPLATE_VARIABLE,
    WARM_MODULES,
    ForkedKernel,
    prepare_spare,
    share_template,
    spare_ready,
    take_spare,
)

# what other modules use of the sandbox and of warm kernels, through this module
__all__ = ["GradingKernelClient", "GradingKernelManager", "is_idle", "start_shared_template",
           "NO_SANDBOX_VARIABLE", "TEMPLATE_VARIABLE", "sandbox_missing", "sandbox_disabled", "spare_ready"]


class GradingKernelClient(AsyncKernelClient):
    """jupyter_client's client, ready when the kernel has answered kernel_info on both channels
    (jupyter_client also waits for 0.2 s of silence on iopub, as long as a warm kernel takes to start)."""

    async def _async_wait_for_ready(self, timeout=None):
        self._handle_kernel_info_reply(await wait_until_ready(self, timeout, self._async_is_alive))

    wait_for_ready = _async_wait_for_ready


async def wait_until_ready(client, timeout, alive):
    """Ask kernel_info until the reply comes on shell and its idle status on iopub (so iopub is subscribed
    and no later message is missed); return the reply. For the manager's asynchronous client and the
    judge's blocking one alike: `alive()` says whether the kernel still runs (plain or awaitable)."""
    deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
    while True:
        request = client.kernel_info()
        with contextlib.suppress(Empty):
            reply = await ensure_async(client.shell_channel.get_msg(timeout=1))
            if reply["msg_type"] == "kernel_info_reply":
                # iopub is subscribed once it brings this request's idle status; else ask again
                # (messages come within milliseconds: a missed one is not waited for long)
                while True:
                    message = await ensure_async(client.iopub_channel.get_msg(timeout=0.05))
                    if message["parent_header"].get("msg_id") == request and is_idle(message):
                        return reply
        if not await ensure_async(alive()):
            raise RuntimeError("Kernel died before replying to kernel_info")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


def is_idle(message):
    return message["msg_type"] == "status" and message["content"].get("execution_state") == "idle"


class GradingKernelManager(AsyncKernelManager):
    client_class = DottedObjectName("coursetools.grading.kernel.GradingKernelClient")
    client_factory = Type(GradingKernelClient, klass=AsyncKernelClient)
    notebook_timeout = Float(900.0, help="Seconds a kernel may live before it is killed with its "
                                         "processes.").tag(config=True)
    memory_limit = Integer(4 * 1024**3, help="Bytes of address space a kernel process may use; 0 for no "
                                             "limit.").tag(config=True)
    sandbox = Bool(True, help="Run kernels in the sandbox (bubblewrap).").tag(config=True)
    process_limit = Integer(128, help="Processes and threads of one sandboxed kernel.").tag(config=True)
    file_size_limit = Integer(256 * 1024**2, help="Bytes of the largest file a kernel writes.").tag(
        config=True)
    tmp_size = Integer(512 * 1024**2, help="Bytes of each of the kernel's private /tmp, /dev/shm and home "
                                           "(in memory).").tag(config=True)
    # far above login users, systemd's dynamic users (61184-65519) and the usual subordinate id ranges
    first_uid = Integer(1_700_000_000, help="First user id that sandboxed kernels run as.").tag(config=True)
    uid_count = Integer(64, help="How many user ids (so kernels at once) the sandbox may use.").tag(
        config=True)
    warm = Bool(True, help="Fork each sandboxed kernel from a template process that has imported the "
                           "libraries once (as root; else each kernel starts Python anew).").tag(config=True)
    warm_modules = List(Unicode(), WARM_MODULES, help="Modules the kernel template imports.").tag(config=True)
    spare = Bool(True, help="While a forked kernel runs, fork the next one into a sandbox of its own, so "
                            "that the next notebook's kernel is ready at once.").tag(config=True)
    student_files_only = Bool(False, help="Give the kernel no code file of its folder, the instructor's "
                                          "included (set when the judge runs the tests outside the kernel).")
    snapshot = Bool(True, help="Fork each kernel of an assignment from a snapshot in which the instructor's "
                               "set-up cells (read-only, before the student's first cell) ran once, when the "
                               "grading step names them (`setup`).").tag(config=True)
    setup = None  # the assignment's set-up cells (warm_kernels.Setup), set by the grading step before start

    _sandbox = None  # the running kernel's sandbox (sandbox.Sandbox), when sandboxed
    _forked = None  # the kernel forked from the kernel template (warm_kernels.ForkedKernel), when forked
    _from_spare = False  # the forked kernel is the spare, made while the notebook before ran
    _work = None  # the notebook's folder, when sandboxed
    _deadline = None  # the timer of the notebook time limit
    _setup_key = None  # the key of the set-up's snapshot, with the assignment's files

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.findings = []  # what the kernel's sandbox saw, for the grading preprocessor to report
        self.killed_for_time = False  # killed at the notebook time limit

    @property
    def sandboxed(self):
        return self.sandbox and not sandbox_disabled()

    @property
    def forks(self):
        """Whether kernels are forked from the kernel template (as root, in the sandbox, `warm`)."""
        return self.warm and self.sandboxed and os.geteuid() == 0

    @property
    def kernel_spec(self):
        # Always this environment's own ipykernel, whatever kernel the notebook names: the sandbox makes
        # this Python, and only it, visible to the kernel.
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3 (grading sandbox)",
                language="python",
                interrupt_mode="message" if self.sandboxed else "signal",
            )
        return self._kernel_spec

    async def _async_start_kernel(self, **kwargs):
        if self.sandboxed:
            if missing := sandbox_missing():
                raise RuntimeError(missing)
            self._work = Path(kwargs.get("cwd") or os.getcwd()).resolve()
            if self.forks:  # the spare runs already, in its sandbox; else a kernel is forked now
                spare = take_spare(self._signature())
                self._forked, self._from_spare = spare or self._fork(self._work.name), spare is not None
                self._sandbox = self._forked.sandbox
                self.load_connection_info(self._forked.info)
                self._connection_file_written = True
            else:
                self._sandbox = self._claim(self._work.name)
                self.ip = str(self._sandbox.runtime / "kernel-ipc")
            self.transport = "ipc"
            self.connection_file = str(self._sandbox.connection_file)
            self._fill(self._sandbox)
        else:
            self.log.warning("GRADING WITHOUT A SANDBOX: student code runs with your rights and sees all "
                             "your files (unset %s to grade safely)", NO_SANDBOX_VARIABLE)
        await super()._async_start_kernel(**kwargs)
        self._deadline = threading.Timer(self.notebook_timeout, self._kill_for_time)
        self._deadline.daemon = True
        self._deadline.start()
        if self._forked and self.spare:
            name = self._work.name
            prepare_spare(self._signature(), lambda: self._fork(name), self.log)

    start_kernel = _async_start_kernel

    def _limits(self):
        return Limits(memory=self.memory_limit, processes=self.process_limit,
                      cpu_seconds=int(self.notebook_timeout) + 60, file_size=self.file_size_limit,
                      tmp_size=self.tmp_size)

    def _claim(self, name):
        """A sandbox for a notebook in a folder `name`, with this manager's limits."""
        return Sandbox.claim(self.first_uid, self.uid_count, name, self._limits())

    def _fork(self, name):
        """A kernel forked from the kernel template into a new sandbox for a notebook in a folder `name`
        (from the snapshot of the set-up cells, where there is one)."""
        setup, instructor = self._snapshot_setup(), self.instructor_folder(self._work)

        def setup_sandbox():  # the assignment's own files, no notebook: those the cells run beside
            sandbox = self._claim(name)
            sandbox.fill(instructor, instructor, instructor_code=not self.student_files_only, notebooks=False)
            return sandbox

        return ForkedKernel(self._claim(name), self.warm_modules, setup, setup_sandbox)

    def _snapshot_setup(self):
        """The set-up to fork from, its key made to name the assignment's files too; None for none (not
        asked for, or a folder outside the course)."""
        if not (self.setup and self.snapshot and self._work):
            return None
        if self._setup_key is None:
            instructor = self.instructor_folder(self._work)
            if instructor is None:
                return None
            files, _ = read_tree(instructor, follow_links=True)
            named = sorted((name, hashlib.sha256(data).hexdigest()) for name, data in files.items()
                           if not name.endswith(".ipynb"))
            self._setup_key = hashlib.sha256(json.dumps(
                [self.setup.key, named, self.student_files_only]).encode()).hexdigest()
        return dataclasses.replace(self.setup, key=self._setup_key)

    @property
    def setup_outputs(self):
        """What each set-up cell printed, when the kernel was forked from their snapshot (else None: the
        kernel runs them)."""
        return self._forked.outputs if self._forked else None

    def _signature(self):
        """What a spare kernel must have been made with to serve the notebook's folder."""
        setup = self._snapshot_setup()
        return (self._work.name, self._limits(), self.first_uid, self.uid_count, tuple(self.warm_modules),
                setup.key if setup else None, self.student_files_only)

    def _fill(self, sandbox):
        """Give the sandbox its copy of the notebook's folder; report the code files left out."""
        sandbox.fill(self._work, self.instructor_folder(self._work),
                     instructor_code=not self.student_files_only)
        if sandbox.left_out:
            files = ", ".join(sandbox.left_out[:5])
            self.log.warning("code files kept out of the grading kernel (not the instructor's): %s", files)
            self.findings.append(Finding(
                "code-files-left-out", f"handed in code files, which the kernel did not get: {files}",
                student=f"Your notebook ran without {files}: grading uses only the course's own code files "
                        "beside the notebook."))

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if self._sandbox and not self._forked:  # a forked kernel has its view, and may be reading it now
            self._sandbox.write_kernel_view(self.get_connection_info())

    def format_kernel_cmd(self, extra_arguments=None):
        if self._forked:
            return ["true"]  # never run: the forked kernel and its sandbox run already
        command = super().format_kernel_cmd(extra_arguments)
        if self._sandbox:
            return self._sandbox.command([str(RUNTIME / CONNECTION_NAME) if part == self.connection_file
                                          else part for part in command])
        limits = memory_rlimits(self.memory_limit)
        return [*prlimit(limits), *command] if limits and shutil.which("prlimit") else command

    def instructor_folder(self, work):
        """The instructor's folder of the assignment that a notebook in `work` belongs to (nbgrader's
        layout: source/<assignment>, autograded/<student>/<assignment>, ...), or None outside the course."""
        coursedir = CourseDirectory(config=self.config)
        root = Path(coursedir.root).resolve()
        if work != root and root not in work.parents:
            return None
        folder = Path(coursedir.format_path(coursedir.source_directory, ".", work.name)).resolve()
        return folder if folder.is_dir() else None

    async def _async_launch_kernel(self, kernel_cmd, **kwargs):
        if self._forked:
            self.provisioner.process = self._forked.process
            self.provisioner.pid = self.provisioner.pgid = self._forked.process.pid
            self.provisioner.cwd = kwargs.get("cwd")
            return
        if self._sandbox:
            # what the kernel writes to its own stdout/stderr (not cell output) is the student's to flood
            kwargs.update(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await super()._async_launch_kernel(kernel_cmd, **kwargs)

    _launch_kernel = _async_launch_kernel

    def cpu_seconds(self):
        """CPU seconds used so far by the kernel and every process under it (and the children they
        waited for), read from outside the kernel in /proc. (A forked kernel is not its sandbox's child.)"""
        pid = self._forked.pid if self._forked else getattr(self.provisioner, "pid", None)
        return sum(_process_cpu(process) for process in _process_tree(pid)) if pid else 0.0

    def _kill_for_time(self):
        pgid = getattr(self.provisioner, "pgid", None)
        if not pgid:
            return
        self.killed_for_time = True
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def _async_shutdown_kernel(self, now=False, restart=False):
        if self._sandbox:
            # The kernel itself is the one process its user should have (with the sandbox's `cat` when
            # forked); count the others before they die. (a kernel that died took its pid namespace, so
            # every process in it, with it)
            left = len(self._sandbox.processes()) - (2 if self._forked else 1)
            if left > 0:
                plural = "es" if left > 1 else ""
                self.findings.append(Finding(
                    "processes-left",
                    f"left {left} process{plural} running after its notebook ended (killed)"))
        await super()._async_shutdown_kernel(now=now, restart=restart)

    shutdown_kernel = _async_shutdown_kernel

    async def _async_cleanup_resources(self, restart=False):
        if self._deadline is not None:
            self._deadline.cancel()
        await super()._async_cleanup_resources(restart=restart)
        if self._sandbox and not restart:
            self._sandbox.release()
            self._sandbox = self._forked = None


def _process_tree(pid):
    """`pid` and every process under it."""
    found, waiting = [], [pid]
    while waiting:
        process = waiting.pop()
        found.append(process)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{process}/task").iterdir():
                waiting += [int(child) for child in (task / "children").read_text().split()]
    return found


def _process_cpu(pid):
    """User and system CPU seconds of a process and of its children that it waited for (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def start_shared_template(config):
    """Start a kernel template for the grading processes that this one starts, which find it through
    TEMPLATE_VARIABLE; None where kernels are not forked (not root, no sandbox, or `warm` off)."""
    manager = GradingKernelManager(config=config)
    return share_template(manager.warm_modules) if manager.forks and not sandbox_missing() else None
