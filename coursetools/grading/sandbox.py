"""The sandbox of a grading kernel: bubblewrap, a user id of its own, rlimits and cgroups.

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

Setting the environment variable COURSE_NO_SANDBOX=1 runs kernels without the sandbox (for a machine
without bubblewrap): student code then runs with the grader's rights.
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
import time
from dataclasses import dataclass
from pathlib import Path

from coursetools.course import read_tree, write_tree

NO_SANDBOX_VARIABLE = "COURSE_NO_SANDBOX"
# environment variables a kernel may see (the grader's environment may hold secrets)
KERNEL_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                      "MKL_NUM_THREADS", "PYDEVD_DISABLE_FILE_VALIDATION")
HOME = Path("/home/student")  # the kernel's home, as it sees it
RUNTIME = HOME / ".local/share/jupyter/runtime"  # where Jupyter keeps a kernel's connection
CONNECTION_NAME = "kernel.json"  # the kernel's view of its connection, in its runtime folder
HOME_FOLDERS = (".cache", ".cache/matplotlib", ".config", ".config/matplotlib", ".local", ".local/share",
                ".local/share/jupyter")
# files that Python could import in place of a module the notebook needs
CODE_SUFFIXES = {".py", ".pyc", ".pyo", ".pyd", ".so", ".pth", ".egg", ".whl", ".zip"}
# the course's test helpers: every source/<assignment>/checks.py is this file, and a student's copy of a
# notebook needs it beside it, wherever that copy lies (nbgrader validate of it, from the course folder)
COURSE_CHECKS = Path(__file__).resolve().parent.parent / "student" / "checks.py"


def sandbox_disabled():
    return os.environ.get(NO_SANDBOX_VARIABLE, "").lower() not in ("", "0", "false", "no")


def sandbox_missing():
    """Why grading kernels cannot be sandboxed here, in one line with what to do; "" when they can."""
    if sandbox_disabled() or shutil.which("bwrap"):
        return ""
    return ("bubblewrap is not installed: install it (apt-get install -y bubblewrap), or grade without a "
            f"sandbox with {NO_SANDBOX_VARIABLE}=1 (student code then runs with your rights)")


@dataclass(frozen=True)
class Limits:
    """What one sandboxed kernel may use."""

    memory: int  # bytes of address space of each process; 0 for no limit
    processes: int  # processes and threads of its user
    cpu_seconds: int  # of each process
    file_size: int  # bytes of the largest file it writes
    tmp_size: int  # bytes of each of its /tmp, /dev/shm and home (in memory)

    def rlimits(self):
        """The rlimits of each of its processes, by prlimit's names (a forked kernel takes them too)."""
        return {**memory_rlimits(self.memory), "nproc": self.processes, "cpu": self.cpu_seconds,
                "fsize": self.file_size, "core": 0}


def memory_rlimits(memory):
    """The rlimits of a process's address space, `memory` bytes (none for 0)."""
    # the data limit too: the grading process's own (JudgedExecute.memory_limit) must not pass on to it
    return {"as": memory, "data": memory} if memory else {}


def prlimit(rlimits):
    """A command prefix that runs its command with `rlimits` (util-linux prlimit)."""
    return ["prlimit", *[f"--{name}={value}" for name, value in rlimits.items()], "--"]


def kernel_environment():
    """The environment of a grading kernel: a few variables of the grader's, and an ordinary home."""
    kept = {name: os.environ[name] for name in KERNEL_ENVIRONMENT if name in os.environ}
    # PYDEVD_...: the debugger that ipykernel imports would warn about frozen modules at every start
    return {**kept, "HOME": str(HOME), "USER": "student", "MPLBACKEND": "Agg",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def bubblewrap(options, tmp_size, chdir, mounts=()):
    """bwrap's command with `options` (its namespaces) and the view that kernels (and the kernel template)
    have: the system and this Python environment read-only, /proc, /dev, /tmp, /dev/shm and an ordinary
    home in memory, then `mounts`; the folder `chdir` and the kernels' environment, nothing of the
    grader's."""
    return ["bwrap", "--die-with-parent", *options, *_system_view(tmp_size), *mounts, "--chdir", str(chdir),
            "--clearenv", *[arg for name, value in kernel_environment().items()
                            for arg in ("--setenv", name, value)]]


class Sandbox:
    """One running kernel's share of the machine, for a notebook in a folder `name` (seen at
    /home/student/<name>): a user id, held with a lock while the kernel runs, its limits, and a private
    folder: the grader's connection file, the read-only copy of the notebook's folder (work/) and the
    kernel's runtime folder (runtime/: its connection file and sockets)."""

    def __init__(self, uid, lock, folder, name, limits):
        self.uid, self._lock, self.folder, self.name, self.limits = uid, lock, folder, name, limits
        self.notebook = HOME / name  # the notebook's folder, as the kernel sees it
        self.connection_file = folder / "kernel.json"  # the grader's view of the kernel's connection
        self.runtime = folder / "runtime"
        self.left_out = []  # code files of the working folder that the kernel does not get
        self._cgroups = []
        self._mounted = False

    @classmethod
    def claim(cls, first_uid, count, name, limits):
        """A sandbox with the first free user id of `count` from `first_uid` (as root; else this user's)."""
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
            sandbox = cls(uid, lock, folder, name, limits)
            sandbox.kill_processes()  # none should be left from an earlier kernel; make sure
            sandbox.runtime.mkdir(mode=0o700)
            sandbox._mounted = as_root and _mount_tmpfs(sandbox.runtime, uid)
            sandbox.give(sandbox.runtime)
            (folder / "work").mkdir(mode=0o755)  # the notebook's folder, empty until `fill`
            return sandbox
        raise RuntimeError(f"all {count} sandbox user ids are in use by running kernels")

    def give(self, path):
        """Hand a file or folder of the sandbox to the kernel's user."""
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.uid, follow_symlinks=False)

    def fill(self, work, instructor=None, instructor_code=True, notebooks=True):
        """Make the sandbox's read-only copy (work/) of `work`, the notebook's folder: of its code files,
        only the course's own are kept (none without `instructor_code`): those with the bytes of the
        `instructor` folder of its assignment, and a checks.py with the bytes of the course's; the others
        are the student's, left out. Without `notebooks`, no notebook either."""
        # a student's code files could replace modules the notebook imports (numpy.py): only the
        # instructor's (nbgrader copies source/<assignment>/ into autograded/<student>/<assignment>/)
        # a student's links, devices and the like are left out, never followed; the instructor's own
        # folder (nbgrader validate of a source notebook) is trusted: its links (checks.py) are followed
        files, _ = read_tree(work, follow_links=instructor is not None and work == instructor.resolve())
        theirs = {name for name, data in files.items() if Path(name).suffix in CODE_SUFFIXES
                  and not _course_code(name, data, instructor)}
        kept = {name: data for name, data in files.items()
                if (Path(name).suffix not in CODE_SUFFIXES or (instructor_code and name not in theirs))
                and (notebooks or Path(name).suffix != ".ipynb")}
        self.left_out = sorted(theirs)
        copy = self.folder / "work"
        write_tree(copy, kept, mode=0o644)  # readable by the kernel's user
        for folder in (copy, *(path for path in copy.rglob("*") if path.is_dir())):
            folder.chmod(0o755)

    def command(self, inner):
        """The command that runs `inner` in this sandbox: in its cgroups, under bwrap, as its user, with its
        rlimits."""
        # the whole sandbox's memory (tmpfs files included) and processes, where cgroups allow it
        joining = self._make_cgroups(self.limits.memory + 3 * self.limits.tmp_size, self.limits.processes)
        namespaces = ["--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                      "--unshare-cgroup-try"]
        mounts = ["--bind", str(self.runtime), str(RUNTIME), "--ro-bind", str(self.folder / "work"),
                  str(self.notebook)]
        return [*joining, *bubblewrap(namespaces, self.limits.tmp_size, self.notebook, mounts), "--",
                *self._drop_privileges(), *prlimit(self.limits.rlimits()), *inner]

    def write_kernel_view(self, info):
        """The kernel's connection file: the same sockets as `info`, seen from inside the sandbox."""
        info = {**info, "ip": str(RUNTIME / "kernel-ipc")}
        info["key"] = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
        # written whole, then renamed into place: a kernel never reads half a file
        written = self.runtime / f".{CONNECTION_NAME}"
        written.write_text(json.dumps(info))
        self.give(written)
        written.replace(self.runtime / CONNECTION_NAME)

    def _make_cgroups(self, memory, processes):
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

    def _drop_privileges(self):
        """setpriv's command: the kernel's own user, no groups, no capabilities, no way back (as root)."""
        if os.geteuid() != 0:
            return []
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"]

    def processes(self):
        """Process ids of the machine that run as this sandbox's user (as root only)."""
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
