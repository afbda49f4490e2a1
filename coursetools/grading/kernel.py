"""The kernel manager of every grading kernel (nbgrader_config.py names it): the sandbox and the limits.

Student code is untrusted. Each grading kernel runs in a bubblewrap sandbox:
- its file system holds only the system (/usr, /etc), this Python environment, a read-only copy of the
  regular files of its working directory (without the student's own code files, which could replace
  modules; when the judge grades, without any code file), a private home, /tmp and /dev/shm in memory,
  each capped in size, and a runtime folder for its connection and sockets that, as root, is a tmpfs of
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

Outside the sandbox this manager kills a kernel, with every process it started, once it has lived for
`notebook_timeout` seconds (nbgrader limits each cell, not a whole notebook), and after the kernel has
ended it kills and counts any process that the kernel's user left behind.

Setting the environment variable COURSE_NO_SANDBOX=1 runs kernels without the sandbox (for a machine
without bubblewrap): student code then runs with the grader's rights, and every kernel start says so.
"""

import fcntl
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbgrader.coursedir import CourseDirectory
from traitlets import Bool, Float, Integer

from coursetools.course import read_tree, write_tree
from coursetools.findings import Finding

NO_SANDBOX_VARIABLE = "COURSE_NO_SANDBOX"
# environment variables a kernel may see (the grader's environment may hold secrets)
KERNEL_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                      "MKL_NUM_THREADS", "PYDEVD_DISABLE_FILE_VALIDATION")
HOME = Path("/home/student")  # the kernel's home, as it sees it
RUNTIME = HOME / ".local/share/jupyter/runtime"  # where Jupyter keeps a kernel's connection
HOME_FOLDERS = (".cache", ".cache/matplotlib", ".local", ".local/share", ".local/share/jupyter")

# what happened to kernels of this process, by kernel id, for the grading preprocessor to report
killed_for_time = set()
found = {}  # kernel id -> [Finding]


def sandbox_disabled():
    return os.environ.get(NO_SANDBOX_VARIABLE, "").lower() not in ("", "0", "false", "no")


def sandbox_missing():
    """Why grading kernels cannot be sandboxed here, in one line with what to do; "" when they can."""
    if sandbox_disabled() or shutil.which("bwrap"):
        return ""
    return ("bubblewrap is not installed: install it (apt-get install -y bubblewrap), or grade without a "
            f"sandbox with {NO_SANDBOX_VARIABLE}=1 (student code then runs with your rights)")


class GradingKernelManager(AsyncKernelManager):
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
    student_files_only = Bool(False, help="Give the kernel no code file of its folder, the instructor's "
                                          "included (set when the judge runs the tests outside the kernel).")

    _cell = None  # the running kernel's share of the machine, when sandboxed
    _deadline = None  # the timer of the notebook time limit

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
            self._cell = _SandboxCell.claim(self.first_uid, self.uid_count)
            self.transport = "ipc"
            self.connection_file = str(self._cell.folder / "kernel.json")  # the grader's view
            self.ip = str(self._cell.runtime / "kernel-ipc")
        else:
            self.log.warning("GRADING WITHOUT A SANDBOX: student code runs with your rights and sees all "
                             "your files (unset %s to grade safely)", NO_SANDBOX_VARIABLE)
        await super()._async_start_kernel(**kwargs)
        self._deadline = threading.Timer(self.notebook_timeout, self._kill_for_time)
        self._deadline.daemon = True
        self._deadline.start()

    start_kernel = _async_start_kernel

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if self._cell:  # the kernel's view: the same sockets, seen from inside the sandbox
            info = {**self.get_connection_info(), "ip": str(RUNTIME / "kernel-ipc")}
            info["key"] = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
            inside = self._cell.runtime / self._cell.connection_name
            inside.write_text(json.dumps(info))
            self._cell.give(inside)

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        limits = [f"--as={self.memory_limit}"] if self.memory_limit else []
        if not self._cell:
            return ["prlimit", *limits, "--", *command] if limits and shutil.which("prlimit") else command
        limits += [f"--nproc={self.process_limit}", f"--cpu={int(self.notebook_timeout) + 60}",
                   f"--fsize={self.file_size_limit}", "--core=0"]
        work = Path(self._launch_args.get("cwd") or os.getcwd()).resolve()
        # the whole sandbox's memory (tmpfs files included) and processes, where cgroups allow it
        joining = self._cell.cgroups(self.memory_limit + 3 * self.tmp_size, self.process_limit)
        sandbox = self._cell.bubblewrap(work, self.tmp_size, self.instructor_folder(work),
                                        instructor_code=not self.student_files_only)
        command = [str(RUNTIME / self._cell.connection_name) if part == self.connection_file else part
                   for part in command]
        if self._cell.left_out:
            files = ", ".join(self._cell.left_out[:5])
            self.log.warning("code files kept out of the grading kernel (not the instructor's): %s", files)
            found.setdefault(self.kernel_id, []).append(Finding(
                "code-files-left-out", f"handed in code files, which the kernel did not get: {files}",
                student=f"Your notebook ran without {files}: grading uses only the course's own code files "
                        "beside the notebook."))
        return [*joining, *sandbox, "--", *self._cell.drop_privileges(), "prlimit", *limits, "--", *command]

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
        if self._cell:
            # what the kernel writes to its own stdout/stderr (not cell output) is the student's to flood
            kwargs.update(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await super()._async_launch_kernel(kernel_cmd, **kwargs)

    _launch_kernel = _async_launch_kernel

    def _kill_for_time(self):
        pgid = getattr(self.provisioner, "pgid", None)
        if not pgid:
            return
        killed_for_time.add(self.kernel_id)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def _async_shutdown_kernel(self, now=False, restart=False):
        if self._cell:
            # The kernel itself is the one process its user should have; count the others before they die.
            # (a kernel that died took its pid namespace, so every process in it, with it)
            left = len(self._cell.processes()) - 1
            if left > 0:
                plural = "es" if left > 1 else ""
                found.setdefault(self.kernel_id, []).append(Finding(
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

    def bubblewrap(self, work, tmp_size, instructor=None, instructor_code=True):
        """bwrap's options: the sandbox's file system, namespaces and environment. `work` is the notebook's
        folder; of its code files, only those of the `instructor` folder of its assignment are kept (none
        without `instructor_code`); the others are the student's, left out."""
        copy = self.folder / "work"
        # a student's code files could replace modules the notebook imports (numpy.py): only the
        # instructor's (nbgrader copies source/<assignment>/ into autograded/<student>/<assignment>/)
        # a student's links, devices and the like are left out, never followed; the instructor's own
        # folder (nbgrader validate of a source notebook) is trusted: its links (checks.py) are followed
        files, _ = read_tree(work, follow_links=instructor is not None and work == instructor.resolve())
        theirs = {name for name in files if Path(name).suffix in CODE_SUFFIXES
                  and not (instructor and (instructor / name).is_file())}
        kept = {name: data for name, data in files.items()
                if Path(name).suffix not in CODE_SUFFIXES or (instructor_code and name not in theirs)}
        self.left_out = sorted(theirs)
        copy.mkdir(mode=0o755)
        write_tree(copy, kept, mode=0o644)  # readable by the kernel's user
        for folder in (copy, *(path for path in copy.rglob("*") if path.is_dir())):
            folder.chmod(0o755)
        environment = [arg for name in KERNEL_ENVIRONMENT if name in os.environ
                       for arg in ("--setenv", name, os.environ[name])]
        prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix} - {"/usr"})
        notebook = HOME / work.name
        return [
            "bwrap", "--die-with-parent", "--new-session",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
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
            "--bind", str(self.runtime), str(RUNTIME),
            "--ro-bind", str(copy), str(notebook), "--chdir", str(notebook),
            "--clearenv", *environment,
            "--setenv", "HOME", str(HOME), "--setenv", "USER", "student", "--setenv", "MPLBACKEND", "Agg",
        ]

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
