"""The kernel manager of every grading kernel (nbgrader_config.py names it): the sandbox and the limits.

Student code is untrusted. Each grading kernel runs in a bubblewrap sandbox:
- its file system holds only the system (/usr, /etc), this Python environment, a read-only copy of the
  regular files of its working directory (of its code files, which could replace modules, only the
  course's own; when the judge grades, none), a private home, /tmp and /dev/shm in memory, each capped
  in size, and a runtime folder for its connection and sockets that, as root, is a tmpfs of
  its own capped in size and number of files: nothing the kernel writes lands where another kernel or
  the grader needs space. The course directory (source/, solutions/, release/, the gradebook, other
  students), the grader's home and everything else are absent; the kernel sees an ordinary home
  (/home/student, its notebook in /home/student/<assignment>) and an environment without a word of
  grading;
- it has a network namespace of its own (no network of the host, not even the host's 127.0.0.1), its
  own process, IPC and host-name namespaces, and every process it starts dies with it;
- when the grader is root, it runs under a user id of its own (one per running kernel, so one
  kernel's fork bomb cannot starve another) with no capabilities and no way to gain privileges;
- its address space, processes, CPU time and file sizes are bounded (util-linux prlimit), and where
  cgroup v1 controllers allow it, its memory and processes as a whole.
The kernel talks to nbclient over ZMQ `ipc` sockets in its runtime folder (TCP cannot cross the network
namespace), and is interrupted by a message, not a signal.

As root, a kernel is not started but forked (KernelTemplate, coursetools/grading/template.py): a template
process that has imported the libraries once joins each new sandbox's namespaces and forks the kernel
into it, which takes the sandbox's user id, limits and environment and gives up every capability; while a
notebook runs, the next kernel is forked into a sandbox of its own (_Spare), ready when asked for.

Outside the sandbox this manager kills a kernel, with every process it started, once it has lived for
`notebook_timeout` seconds (nbgrader limits each cell, not a whole notebook), and after the kernel has
ended it kills and counts any process that the kernel's user left behind.

Setting the environment variable COURSE_NO_SANDBOX=1 runs kernels without the sandbox (for a machine
without bubblewrap): student code then runs with the grader's rights, and every kernel start says so.
"""

import atexit
import contextlib
import fcntl
import json
import multiprocessing.util
import os
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbgrader.coursedir import CourseDirectory
from traitlets import Bool, DottedObjectName, Float, Integer, List, Type, Unicode

from coursetools.course import read_tree, write_tree
from coursetools.findings import Finding
from coursetools.grading.template import NAMESPACES as TEMPLATE_NAMESPACES

NO_SANDBOX_VARIABLE = "COURSE_NO_SANDBOX"
TEMPLATE_VARIABLE = "COURSE_KERNEL_TEMPLATE"  # the socket of the kernel template a grading run shares
# environment variables a kernel may see (the grader's environment may hold secrets)
KERNEL_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                      "MKL_NUM_THREADS", "PYDEVD_DISABLE_FILE_VALIDATION")
HOME = Path("/home/student")  # the kernel's home, as it sees it
RUNTIME = HOME / ".local/share/jupyter/runtime"  # where Jupyter keeps a kernel's connection
# what the course's notebooks import, imported once by the kernel template (ipykernel: the kernel itself)
WARM_MODULES = ["numpy", "pandas", "scipy.special", "sklearn.datasets", "sklearn.linear_model",
                "sklearn.metrics", "sklearn.model_selection", "sklearn.neighbors", "sklearn.neural_network",
                "sklearn.tree", "matplotlib.pyplot", "ipykernel.kernelapp", "ipykernel.ipkernel",
                "ipykernel.zmqshell", "ipykernel.debugger"]
HOME_FOLDERS = (".cache", ".cache/matplotlib", ".config", ".config/matplotlib", ".local", ".local/share",
                ".local/share/jupyter")

def sandbox_disabled():
    return os.environ.get(NO_SANDBOX_VARIABLE, "").lower() not in ("", "0", "false", "no")


def sandbox_missing():
    """Why grading kernels cannot be sandboxed here, in one line with what to do; "" when they can."""
    if sandbox_disabled() or shutil.which("bwrap"):
        return ""
    return ("bubblewrap is not installed: install it (apt-get install -y bubblewrap), or grade without a "
            f"sandbox with {NO_SANDBOX_VARIABLE}=1 (student code then runs with your rights)")


class GradingKernelClient(AsyncKernelClient):
    """jupyter_client's client, ready when the kernel has answered kernel_info on both channels
    (jupyter_client also waits for 0.2 s of silence on iopub, as long as a warm kernel takes to start)."""

    async def _async_wait_for_ready(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            request = self.kernel_info()
            with contextlib.suppress(Empty):
                reply = await self.shell_channel.get_msg(timeout=1)
                if reply["msg_type"] == "kernel_info_reply":
                    # iopub is subscribed once it brings this request's idle status; else ask again
                    # (messages come within milliseconds: a missed one is not waited for long)
                    while True:
                        message = await self.iopub_channel.get_msg(timeout=0.05)
                        if message["parent_header"].get("msg_id") == request and is_idle(message):
                            self._handle_kernel_info_reply(reply)
                            return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    wait_for_ready = _async_wait_for_ready


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

    _cell = None  # the running kernel's share of the machine, when sandboxed
    _forked = False  # the kernel is forked from the template into its sandbox
    _adopted = None  # the spare (_Spare) whose sandbox and kernel this manager took over
    _deadline = None  # the timer of the notebook time limit

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.findings = []  # what the kernel's sandbox saw, for the grading preprocessor to report
        self.killed_for_time = False  # killed at the notebook time limit

    @property
    def sandboxed(self):
        return self.sandbox and not sandbox_disabled()

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
            self._forked = self.warm and os.geteuid() == 0
            name = Path(kwargs.get("cwd") or os.getcwd()).resolve().name
            spare = _Spare.take(self._signature(name)) if self._forked else None
            if spare:  # its kernel runs already, in its sandbox: only the notebook's files are missing
                self._cell, self._adopted = spare.cell, spare
                self.load_connection_info(spare.info)
                self._connection_file_written = True
            else:
                self._cell = _SandboxCell.claim(self.first_uid, self.uid_count)
                self.ip = str(self._cell.runtime / "kernel-ipc")
            self.transport = "ipc"
            self.connection_file = str(self._cell.folder / "kernel.json")  # the grader's view
        else:
            self.log.warning("GRADING WITHOUT A SANDBOX: student code runs with your rights and sees all "
                             "your files (unset %s to grade safely)", NO_SANDBOX_VARIABLE)
        await super()._async_start_kernel(**kwargs)
        self._deadline = threading.Timer(self.notebook_timeout, self._kill_for_time)
        self._deadline.daemon = True
        self._deadline.start()
        if self._forked and self.spare:
            _Spare.prepare(self, name)

    start_kernel = _async_start_kernel

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if self._cell:
            self._cell.write_kernel_view(self.get_connection_info())

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        limits = self._limit_options()
        if not self._cell:
            return ["prlimit", *limits, "--", *command] if limits and shutil.which("prlimit") else command
        work = Path(self._launch_args.get("cwd") or os.getcwd()).resolve()
        self._cell.fill(work, self.instructor_folder(work), instructor_code=not self.student_files_only)
        if self._cell.left_out:
            files = ", ".join(self._cell.left_out[:5])
            self.log.warning("code files kept out of the grading kernel (not the instructor's): %s", files)
            self.findings.append(Finding(
                "code-files-left-out", f"handed in code files, which the kernel did not get: {files}",
                student=f"Your notebook ran without {files}: grading uses only the course's own code files "
                        "beside the notebook."))
        if self._adopted:
            return ["true"]  # never run: the spare's sandbox and kernel run already
        if self._forked:
            return self._sandbox_command(work.name, limits, FORKED_PLACEHOLDER)
        command = [str(RUNTIME / self._cell.connection_name) if part == self.connection_file else part
                   for part in command]
        return self._sandbox_command(work.name, limits, command)

    def _limit_options(self):
        """prlimit's options: a kernel process's address space and, in the sandbox, its processes, CPU
        seconds, file sizes and core dumps."""
        # the data limit too: the grading process's own (JudgedExecute.memory_limit) must not pass on to it
        limits = [f"--as={self.memory_limit}", f"--data={self.memory_limit}"] if self.memory_limit else []
        if self.sandboxed:
            limits += [f"--nproc={self.process_limit}", f"--cpu={int(self.notebook_timeout) + 60}",
                       f"--fsize={self.file_size_limit}", "--core=0"]
        return limits

    def _sandbox_command(self, name, limits, command):
        """The command that runs `command` in the cell's sandbox, for a notebook in a folder `name`."""
        # the whole sandbox's memory (tmpfs files included) and processes, where cgroups allow it
        joining = self._cell.cgroups(self.memory_limit + 3 * self.tmp_size, self.process_limit)
        return [*joining, *self._cell.bubblewrap(name, self.tmp_size), "--", *self._cell.drop_privileges(),
                "prlimit", *limits, "--", *command]

    def _signature(self, name):
        """What a spare kernel must have been made with to serve a notebook in a folder `name`."""
        return (name, tuple(self._limit_options()), self.tmp_size, self.first_uid, self.uid_count,
                tuple(self.warm_modules))

    def _fork_request(self, cell, name):
        """What the template needs to fork a kernel into the sandbox of `cell`."""
        limits = {option.strip("-").split("=")[0]: int(option.split("=")[1])
                  for option in self._limit_options()}
        return {"uid": cell.uid, "cwd": str(HOME / name), "limits": limits,
                "environment": kernel_environment(), "connection_file": str(RUNTIME / cell.connection_name)}

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
        if self._adopted:
            spare = self._adopted
            self.provisioner.process = spare.process
            self.provisioner.pid = self.provisioner.pgid = spare.process.pid
            self.provisioner.cwd = kwargs.get("cwd")
            return
        if self._cell:
            # what the kernel writes to its own stdout/stderr (not cell output) is the student's to flood
            kwargs.update(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not self._forked:
            await super()._async_launch_kernel(kernel_cmd, **kwargs)
            return
        life_read, life = os.pipe()
        ready_read, ready = os.pipe()
        try:
            await super()._async_launch_kernel(kernel_cmd, **{**kwargs, "stdin": life_read, "stdout": ready})
        finally:
            os.close(life_read)
            os.close(ready)
        name = Path(kwargs.get("cwd") or os.getcwd()).resolve().name
        request = self._fork_request(self._cell, name)
        _fork_into(self.provisioner.process, ready_read, life, self._cell, request, self.warm_modules)

    _launch_kernel = _async_launch_kernel

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
        if self._cell:
            # The kernel itself is the one process its user should have (with the sandbox's `cat` when
            # forked); count the others before they die. (a kernel that died took its pid namespace, so
            # every process in it, with it)
            left = len(self._cell.processes()) - (2 if self._forked else 1)
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
        if self._cell and not restart:
            self._cell.release()
            self._cell = None

    cleanup_resources = _async_cleanup_resources


class _SandboxCell:
    """One running kernel's share of the machine: a user id, held with a lock while the kernel runs, and
    a private folder: the grader's connection file, the read-only copy of the notebook's folder (work/)
    and the kernel's runtime folder (runtime/: its connection file and sockets)."""

    connection_name = "kernel.json"  # the kernel's view of its connection, in its runtime folder

    def __init__(self, uid, lock, folder):
        self.uid, self._lock, self.folder = uid, lock, folder
        self.runtime = folder / "runtime"
        self.left_out = []  # code files of the working folder that the kernel does not get
        self._cgroups = []
        self._mounted = False

    @classmethod
    def claim(cls, first_uid, count):
        as_root = os.geteuid() == 0
        locks = _private_folder(Path("/run" if as_root else tempfile.gettempdir()) /
                                f"lesson24-sandbox-{os.geteuid()}")
        for uid in range(first_uid, first_uid + count) if as_root else [os.geteuid()]:
            # held open while the kernel runs; never through a link someone else planted
            lock = os.fdopen(os.open(locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600), "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            memory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            folder = Path(tempfile.mkdtemp(prefix="lesson24-kernel-", dir=memory))
            folder.chmod(0o755)
            cell = cls(uid, lock, folder)
            cell.kill_processes()  # none should be left from an earlier kernel; make sure
            cell.runtime.mkdir(mode=0o700)
            cell._mounted = as_root and _mount_tmpfs(cell.runtime, uid)
            cell.give(cell.runtime)
            return cell
        raise RuntimeError(f"all {count} sandbox user ids are in use by running kernels")

    def give(self, path):
        """Hand a file or folder of the cell to the kernel's user."""
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.uid, follow_symlinks=False)

    def fill(self, work, instructor=None, instructor_code=True):
        """Make the cell's read-only copy (work/) of `work`, the notebook's folder (empty for None): of its
        code files, only the course's own are kept (none without `instructor_code`): those with the bytes
        of the `instructor` folder of its assignment, and a checks.py with the bytes of the course's; the
        others are the student's, left out."""
        copy = self.folder / "work"
        copy.mkdir(mode=0o755, exist_ok=True)
        if work is None:
            return
        # a student's code files could replace modules the notebook imports (numpy.py): only the
        # instructor's (nbgrader copies source/<assignment>/ into autograded/<student>/<assignment>/)
        # a student's links, devices and the like are left out, never followed; the instructor's own
        # folder (nbgrader validate of a source notebook) is trusted: its links (checks.py) are followed
        files, _ = read_tree(work, follow_links=instructor is not None and work == instructor.resolve())
        theirs = {name for name, data in files.items() if Path(name).suffix in CODE_SUFFIXES
                  and not _course_code(name, data, instructor)}
        kept = {name: data for name, data in files.items()
                if Path(name).suffix not in CODE_SUFFIXES or (instructor_code and name not in theirs)}
        self.left_out = sorted(theirs)
        write_tree(copy, kept, mode=0o644)  # readable by the kernel's user
        for folder in (copy, *(path for path in copy.rglob("*") if path.is_dir())):
            folder.chmod(0o755)

    def bubblewrap(self, name, tmp_size):
        """bwrap's options: the sandbox's file system, namespaces and environment, for a notebook in a
        folder `name`, seen at /home/student/<name> (the cell's copy, made by `fill`)."""
        notebook = HOME / name
        return [
            "bwrap", "--die-with-parent", "--new-session",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            *_system_view(tmp_size),
            "--bind", str(self.runtime), str(RUNTIME),
            "--ro-bind", str(self.folder / "work"), str(notebook), "--chdir", str(notebook),
            "--clearenv", *[arg for name, value in kernel_environment().items()
                            for arg in ("--setenv", name, value)],
        ]

    def write_kernel_view(self, info):
        """The kernel's connection file: the same sockets as `info`, seen from inside the sandbox."""
        info = {**info, "ip": str(RUNTIME / "kernel-ipc")}
        info["key"] = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
        inside = self.runtime / self.connection_name
        inside.write_text(json.dumps(info))
        self.give(inside)

    def cgroups(self, memory, processes):
        """A command prefix that puts the sandbox into cgroups of its own (cgroup v1 memory and pids
        controllers, as root): rlimits bound each process, these bound all of them together. Empty when
        the machine does not offer them; the rlimits still apply."""
        limits = {"memory": ("memory.limit_in_bytes", memory), "pids": ("pids.max", processes)}
        self._cgroups = []
        for controller, (limit, value) in limits.items():
            group = Path("/sys/fs/cgroup") / controller / "lesson24-sandbox" / self.folder.name
            try:
                group.mkdir(parents=True)
            except OSError:
                continue
            try:
                (group / limit).write_text(str(value))
            except OSError:
                group.rmdir()
                continue
            self._cgroups.append(group)
        if not self._cgroups:
            return []
        join = " && ".join(f"echo $$ > {shlex.quote(str(group / 'cgroup.procs'))}" for group in self._cgroups)
        return ["sh", "-c", f'{join} && exec "$@"', "sh"]

    def join_cgroups(self, pid):
        """Put a process (a kernel forked into the sandbox) into the sandbox's cgroups."""
        for group in self._cgroups:
            (group / "cgroup.procs").write_text(str(pid))

    def drop_privileges(self):
        """setpriv's command: the kernel's own user, no groups, no capabilities, no way back (as root)."""
        if os.geteuid() != 0:
            return []
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"]

    def processes(self):
        """Process ids of the machine that run as this cell's user (as root only)."""
        if os.geteuid() != 0:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    alive = "\nState:\tZ" not in (entry / "status").read_text()  # zombies are dead already
                    if entry.stat().st_uid == self.uid and alive:
                        found.append(int(entry.name))
                except OSError:
                    continue  # it ended meanwhile
        return found

    def kill_processes(self):
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def release(self):
        try:
            self.kill_processes()
            for group in self._cgroups:
                for _ in range(50):  # a killed process leaves its cgroup a moment later
                    try:
                        group.rmdir()
                        break
                    except OSError:
                        time.sleep(0.02)
            if self._mounted:
                subprocess.run(["umount", "--lazy", str(self.runtime)], check=False)
            try:
                shutil.rmtree(self.folder)
            except Exception:  # e.g. a folder tree too deep for rmtree's recursion
                subprocess.run(["rm", "-rf", "--one-file-system", str(self.folder)], check=False)
        finally:
            self._lock.close()


# what a sandbox runs while its forked kernel runs: it says when it is made (its namespaces can be joined),
# then waits on a life line whose other end only the kernel holds, so that it ends when the kernel does,
# and the kernel (in the sandbox's process namespace) when it does
FORKED_PLACEHOLDER = ["sh", "-c", "echo ready; exec cat"]


def _fork_into(sandbox, ready_read, life, cell, request, modules):
    """Fork a kernel from the template into a sandbox just launched (`sandbox`, running FORKED_PLACEHOLDER
    with `life` and `ready_read` at the other ends of its input and output); return the kernel's pid.
    Closes both ends; kills the sandbox if anything fails."""
    try:
        _wait_for_line(ready_read, 30, sandbox)
        init = int(Path(f"/proc/{sandbox.pid}/task/{sandbox.pid}/children").read_text().split()[0])
        pid = _TemplateLine.fork_kernel(modules, request, init, life)
        cell.join_cgroups(pid)
        _end_with(sandbox, pid)
        return pid
    except BaseException:
        sandbox.kill()
        raise
    finally:
        os.close(ready_read)
        os.close(life)


def _end_with(sandbox, pid):
    """End the sandbox when its forked kernel ends, as a sandbox whose kernel was started anew does: a
    process that the kernel forked could otherwise hold the life line, so the sandbox, open."""
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


class _Spare:
    """A kernel forked into a sandbox of its own before it is asked for (one per process): prepared while
    the notebook before runs, for a notebook in a folder of the same name with the same limits. The
    manager that takes it fills the sandbox's copy of the notebook's folder, then talks to the kernel."""

    _ready = None  # this process's spare, once made
    _making = False
    _cleanup_in = None  # the process whose exit ends its spare
    _lock = threading.Lock()

    def __init__(self, manager, name):
        self.signature = manager._signature(name)
        self.cell = _SandboxCell.claim(manager.first_uid, manager.uid_count)
        manager_view = {"transport": "ipc", "ip": str(self.cell.runtime / "kernel-ipc"),
                        "key": str(uuid.uuid4()).encode(), "signature_scheme": "hmac-sha256"}
        self.connection_file, info = write_connection_file(str(self.cell.folder / "kernel.json"),
                                                           **manager_view)
        self.info = {**info, "key": manager_view["key"]}
        self.cell.write_kernel_view(self.info)
        limits = manager._limit_options()
        command = [*self.cell.cgroups(manager.memory_limit + 3 * manager.tmp_size, manager.process_limit),
                   *self.cell.bubblewrap(name, manager.tmp_size), "--", *self.cell.drop_privileges(),
                   "prlimit", *limits, "--", *FORKED_PLACEHOLDER]
        self.cell.fill(None)  # an empty copy of the notebook's folder, filled when the spare is taken
        life_read, life = os.pipe()
        ready_read, ready = os.pipe()
        try:
            self.process = subprocess.Popen(command, stdin=life_read, stdout=ready, stderr=subprocess.DEVNULL,
                                            start_new_session=True)
        finally:
            os.close(life_read)
            os.close(ready)
        request = manager._fork_request(self.cell, name)
        self.kernel = _fork_into(self.process, ready_read, life, self.cell, request, manager.warm_modules)

    @classmethod
    def prepare(cls, manager, name):
        """Make this process's spare in a thread of its own, unless one is there or being made."""
        with cls._lock:
            if cls._ready is not None or cls._making:
                return
            cls._making = True
            if cls._cleanup_in != os.getpid():
                cls._cleanup_in = os.getpid()
                atexit.register(cls.discard_ready)
                # a grading worker ends through multiprocessing, which runs its finalizers, not atexit's
                multiprocessing.util.Finalize(None, cls.discard_ready, exitpriority=10)

        def make():  # the thread lives as long as the sandbox: bwrap ends with the thread that started it
            try:
                spare = cls(manager, name)
            except Exception as error:  # no spare: the next kernel is forked when asked for
                manager.log.warning("could not prepare a spare kernel: %s", error)
                return
            finally:
                with cls._lock:
                    cls._making = False
            with cls._lock:
                cls._ready = spare
            spare.process.wait()
            with cls._lock:  # ended before anyone took it: its cell is nobody else's to release
                untaken = cls._ready is spare
                if untaken:
                    cls._ready = None
            if untaken:
                spare.cell.release()

        threading.Thread(target=make, name="spare-kernel", daemon=True).start()

    @classmethod
    def take(cls, signature):
        """The spare if it fits `signature` and its kernel runs (None otherwise; a spare that does not fit
        is ended)."""
        with cls._lock:
            spare, cls._ready = cls._ready, None
        if spare is None:
            return None
        if spare.signature == signature and spare.process.poll() is None:
            return spare
        spare.discard()
        return None

    def discard(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.cell.release()

    @classmethod
    def discard_ready(cls):
        """End this process's spare (at its exit), waiting a moment for one that is being made."""
        for _ in range(100):
            with cls._lock:
                if not cls._making:
                    spare, cls._ready = cls._ready, None
                    break
            time.sleep(0.1)
        else:
            return
        if spare is not None:
            spare.discard()




def spare_ready():
    """Whether this process has a spare kernel ready for the next notebook."""
    return _Spare._ready is not None


class KernelTemplate:
    """A kernel template (coursetools/grading/template.py): a process in a sandbox of its own that has
    imported the libraries once and forks a kernel into each new kernel sandbox, in a tenth of a second
    instead of seconds. It listens on a socket in a private folder of this user; it ends with the process
    that started it. `course grade` starts one for all its workers (TEMPLATE_VARIABLE); any other grading
    process starts its own on first use."""

    def __init__(self, modules=WARM_MODULES):
        self.folder = Path(tempfile.mkdtemp(prefix="lesson24-template-"))  # mode 0700
        self.path = self.folder / "socket"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(self.path))
        listener.listen(64)
        source = (Path(__file__).parent / "template.py").read_text()
        command = ["bwrap", "--die-with-parent", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                   "--cap-add", "ALL", *_system_view(64 * 1024**2), "--chdir", str(HOME),
                   "--clearenv", *[arg for name, value in kernel_environment().items()
                                   for arg in ("--setenv", name, value)],
                   "--", sys.executable, "-I", "-c", source, str(listener.fileno()), *modules]
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


def start_shared_template(config):
    """Start a kernel template for the grading processes that this one starts, which find it through
    TEMPLATE_VARIABLE; None where kernels are not forked (not root, no sandbox, or `warm` off)."""
    manager = GradingKernelManager(config=config)
    if not (manager.warm and manager.sandboxed and os.geteuid() == 0 and not sandbox_missing()):
        return None
    template = KernelTemplate(manager.warm_modules)
    os.environ[TEMPLATE_VARIABLE] = str(template.path)
    return template


class _TemplateLine:
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
    def fork_kernel(cls, modules, request, init, life):
        """Fork a kernel into the sandbox whose init process is `init`; return the kernel's process id. A
        template that ended is replaced (the line to it broke before the request went)."""
        try:
            return cls.get(modules).fork(request, init, life)
        except OSError:
            return cls.get(modules).fork(request, init, life)

    def fork(self, request, init, life):
        namespaces = [os.open(f"/proc/{init}/ns/{name}", os.O_RDONLY) for name in TEMPLATE_NAMESPACES]
        try:
            with self._asking:
                socket.send_fds(self.channel, [json.dumps(request).encode()], [*namespaces, life])
                answer = json.loads(self.channel.recv(65536) or b'{"error": "the kernel template ended"}')
        except OSError:
            self.broken = True
            raise
        finally:
            for fd in namespaces:
                os.close(fd)
        if "pid" not in answer:
            self.broken = "ended" in str(answer.get("error"))
            raise RuntimeError(f"the kernel template could not start a kernel: {answer.get('error')}")
        return answer["pid"]


def _wait_for_line(fd, timeout, process):
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


def kernel_environment():
    """The environment of a grading kernel: a few variables of the grader's, and an ordinary home."""
    kept = {name: os.environ[name] for name in KERNEL_ENVIRONMENT if name in os.environ}
    # PYDEVD_...: the debugger that ipykernel imports would warn about frozen modules at every start
    return {**kept, "HOME": str(HOME), "USER": "student", "MPLBACKEND": "Agg",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def _system_view(tmp_size):
    """bwrap's options for the file system that kernels (and the kernel template) see: the system and this
    Python environment read-only, /proc, /dev, and /tmp, /dev/shm and an ordinary home in memory."""
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix} - {"/usr"})
    return [
        "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
        *[arg for link in ("bin", "lib", "lib64", "sbin") if os.path.islink(f"/{link}")
          for arg in ("--symlink", os.readlink(f"/{link}"), f"/{link}")],
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp",
        "--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/dev/shm",
        *_mount("--ro-bind", *[(prefix, prefix) for prefix in prefixes]),
        # an ordinary home, private and capped: its folders writable by the kernel's user
        "--perms", "1777", "--size", str(tmp_size), "--tmpfs", str(HOME),
        *[arg for folder in HOME_FOLDERS for arg in ("--perms", "0777", "--dir", str(HOME / folder))],
        *[arg for font_list in _matplotlib_font_lists()
          for arg in ("--ro-bind", str(font_list), str(HOME / ".cache/matplotlib" / font_list.name))],
    ]


def _mount(how, *pairs):
    """bwrap's options that mount each (source, destination), after the parents of the destination:
    bwrap would make missing parents with the modes of the host's (e.g. /root, 0700), which would keep
    the kernel's user out."""
    options = []
    for source, destination in pairs:
        for parent in reversed(Path(destination).parents[:-1]):
            if str(parent) not in ("/tmp", "/dev", "/dev/shm"):
                options += ["--perms", "0755", "--dir", str(parent)]
        options += [how, str(source), str(destination)]
    return options


# files that Python could import in place of a module the notebook needs
CODE_SUFFIXES = {".py", ".pyc", ".pyo", ".pyd", ".so", ".pth", ".egg", ".whl", ".zip"}
# the course's test helpers: every source/<assignment>/checks.py is this file, and a student's copy of a
# notebook needs it beside it, wherever that copy lies (nbgrader validate of it, from the course folder)
COURSE_CHECKS = Path(__file__).resolve().parent.parent / "student" / "checks.py"


def _course_code(name, data, instructor):
    """Whether the code file `name` of a notebook's folder, with bytes `data`, is the course's own: the
    same bytes as the file of that name in the `instructor` folder (None outside the course), or, for
    checks.py, as the course's. A student's file of the same name but other bytes is not."""
    same = [COURSE_CHECKS] if name == "checks.py" else []
    if instructor is not None:
        same.append(instructor / name)
    return any(path.is_file() and path.read_bytes() == data for path in same)


def _private_folder(folder):
    """`folder`, made if missing, owned by this user, mode 0700 and not a link (else an error)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{folder} is not a private folder of this user: remove it")
    return folder


def _mount_tmpfs(folder, uid, size=1024**2, files=64):
    """Mount a tmpfs of its own at `folder` for the kernel's user (as root): its sockets and connection
    file need a few files; a kernel that fills it fills nothing else. False where mounting is refused."""
    options = f"size={size},nr_inodes={files},mode=0700,uid={uid},gid={uid}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          check=False)
    return done.returncode == 0


def _matplotlib_font_lists():
    """matplotlib's font lists of this machine: a fresh home would rebuild them, a few seconds each time."""
    try:
        import matplotlib

        return sorted(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))
    except Exception:  # no matplotlib, or no cache: the kernel builds its own
        return []
