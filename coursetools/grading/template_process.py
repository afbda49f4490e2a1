"""The code of the kernel template: one process that imports the libraries once and forks a grading kernel
per notebook.

Run by coursetools.grading.warm_kernels as `python -I -c <this file's source> <fd> <module> ...` inside a
bubblewrap sandbox of its own (the kernels' view of the file system, no course file, no network), as root
with its capabilities, and nothing else: this file imports no module of the course, and the template never
receives anything of a course but the requests below, so a kernel forked from it inherits libraries and
nothing that a hidden test needs.

Grading processes connect to the listening socket <fd>. A request is a message of JSON and, with it, file
descriptors: the namespaces of a freshly started kernel sandbox (ipc, uts, net, cgroup, pid, mnt), then
the write end of the sandbox's life line. The template forks; the child joins the sandbox's namespaces
and forks the kernel into them, which takes the sandbox's user id, limits, working folder and environment,
gives up every capability and runs ipykernel. The answer is the kernel's process id (or an error), a
message of JSON.

A forked kernel shares no writable memory with the template (copy on write), runs under another user id
in other namespaces, and cannot see or signal the template: nothing passes from a kernel back to the
template, or from one kernel to the next.
"""

import contextlib
import ctypes
import importlib
import json
import os
import resource
import select
import signal
import socket
import sys
import traceback

NAMESPACES = ("ipc", "uts", "net", "cgroup", "pid", "mnt")  # the mount namespace last: it changes the root
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
LIMITS = {"as": resource.RLIMIT_AS, "data": resource.RLIMIT_DATA, "nproc": resource.RLIMIT_NPROC,
          "cpu": resource.RLIMIT_CPU, "fsize": resource.RLIMIT_FSIZE, "core": resource.RLIMIT_CORE}

libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def become_kernel(request, life):
    """In the grandchild, inside the sandbox's namespaces: take the sandbox's user, limits and environment,
    give up every capability, and run the kernel (never returns)."""
    os.setsid()
    for name, value in request["limits"].items():
        resource.setrlimit(LIMITS[name], (value, value))
    last_capability = int(open("/proc/sys/kernel/cap_last_cap").read())
    for capability in range(last_capability + 1):
        check(libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0), "dropping a capability")
    uid = request["uid"]
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another user: the permitted capabilities go too
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")
    # a change of user makes a process undumpable (its /proc files root's); a kernel that exec'd is not
    check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable, as a kernel started anew")
    status = open("/proc/self/status").read().splitlines()
    if any(line.split()[1].strip("0") for line in status if line.startswith(("CapEff", "CapPrm"))):
        raise RuntimeError("the kernel kept a capability")
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["environment"])
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, life)
    os.closerange(life + 1, 1 << 16)
    os.set_inheritable(life, False)  # programs the kernel runs do not hold the sandbox open
    sys.argv = ["ipykernel_launcher", "-f", request["connection_file"]]
    sys.path.insert(0, request["cwd"])  # as `python -m ipykernel_launcher` started there would have it
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(sys.argv[1:])
    app.start()
    os._exit(0)


def fork_kernel(request, namespaces, life):
    """Fork a kernel into the sandbox whose namespaces are given; return its process id."""
    report_read, report_write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(report_read)
            for fd, name in zip(namespaces, NAMESPACES, strict=True):
                check(libc.setns(fd, 0), f"joining the sandbox's {name} namespace")
                os.close(fd)
            kernel = os.fork()  # in the sandbox's process namespace
            if kernel == 0:
                os.close(report_write)
                try:
                    become_kernel(request, life)
                finally:
                    os._exit(70)
            os.write(report_write, json.dumps({"pid": kernel}).encode())
        except BaseException:
            os.write(report_write, json.dumps({"error": traceback.format_exc(limit=2)}).encode())
        os._exit(0)  # the kernel, orphaned, is reaped by the machine's init, not by the sandbox's
    os.close(report_write)
    for fd in (*namespaces, life):
        os.close(fd)
    with os.fdopen(report_read, "rb") as report:
        answer = report.read()
    os.waitpid(child, 0)
    return json.loads(answer or b'{"error": "the fork ended without a word"}')


def serve(listener):
    """Answer the requests of every grading process that connects (a message each, on sequenced-packet
    sockets), one at a time, in this one thread: a process with threads cannot fork safely."""
    channels = []
    while True:
        ready, _, _ = select.select([listener, *channels], [], [])
        for channel in ready:
            if channel is listener:
                channels.append(listener.accept()[0])
                continue
            try:
                message, fds, _, _ = socket.recv_fds(channel, 65536, len(NAMESPACES) + 1)
            except OSError:
                message, fds = b"", []
            if not message or len(fds) != len(NAMESPACES) + 1:
                for fd in fds:
                    os.close(fd)
                if not message:  # that grading process is gone
                    channels.remove(channel)
                    channel.close()
                else:
                    channel.send(b'{"error": "a request without its sandbox"}')
                continue
            try:
                answer = fork_kernel(json.loads(message), fds[:-1], fds[-1])
            except Exception:
                answer = {"error": traceback.format_exc(limit=2)}
            with contextlib.suppress(OSError):
                channel.send(json.dumps(answer).encode())


def main():
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "dying with the grader")
    for module in sys.argv[2:]:
        importlib.import_module(module)
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
