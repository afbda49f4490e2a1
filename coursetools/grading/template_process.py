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

Snapshots: a request {"make_snapshot": key, "prelude": code, "cells": [code], "cwd", "environment"}, with
the namespaces of a sandbox that holds the assignment's own files, makes a snapshot process: a child of
the template that joins that sandbox's file system, runs the prelude (the course's test helpers, which
the cells import) and the instructor's set-up cells, the same for every student, once, and answers what
each cell printed. A kernel request that names the key ({"snapshot": key, ...}) is then passed to that
process, which forks the kernel as the template does, with the cells' variables as its namespace: the
student's first cell starts where the set-up cells left off. The cells are the instructor's (never a
student's), and the snapshot runs no code of any student's: what a kernel inherits from it, every
kernel of the assignment inherits, and every student sees in the release.
"""

import ast
import contextlib
import ctypes
import importlib
import io
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


def become_kernel(request, life, user_ns=None):
    """In the grandchild, inside the sandbox's namespaces: take the sandbox's user, limits and environment,
    give up every capability, and run the kernel, with `user_ns` as its namespace (never returns)."""
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
    if sys.path[0] != request["cwd"]:  # as `python -m ipykernel_launcher` started there would have it
        sys.path.insert(0, request["cwd"])
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.user_ns = user_ns
    app.initialize(sys.argv[1:])
    app.start()
    os._exit(0)


def fork_kernel(request, namespaces, life, user_ns=None):
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
                    become_kernel(request, life, user_ns)
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
    channels, snapshots = [], {}  # snapshots: key -> the socket of its process
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
                request = json.loads(message)
                if "make_snapshot" in request:
                    answer = make_snapshot(request, fds, snapshots, [listener, *channels])
                elif "snapshot" in request:
                    answer = ask_snapshot(snapshots, request, fds)
                else:
                    answer = fork_kernel(request, fds[:-1], fds[-1])
            except Exception:
                answer = {"error": traceback.format_exc(limit=2)}
            with contextlib.suppress(OSError):
                channel.send(json.dumps(answer).encode())


def make_snapshot(request, fds, snapshots, sockets):
    """Start the snapshot process of request["make_snapshot"] (see above), unless there is one; answer
    what its cells printed."""
    key = request["make_snapshot"]
    if key in snapshots:
        for fd in fds:
            os.close(fd)
        return {"made": key}
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:
        try:
            ours.close()
            for other in [*sockets, *snapshots.values()]:
                other.close()
            run_snapshot(request, fds, theirs)
        except BaseException:
            with contextlib.suppress(OSError):
                theirs.send(json.dumps({"error": traceback.format_exc(limit=3)[-4000:]}).encode())
        finally:
            os._exit(70)
    theirs.close()
    for fd in fds:
        os.close(fd)
    ours.settimeout(600)  # the set-up cells run meanwhile
    try:
        answer = json.loads(ours.recv(1 << 20) or b'{"error": "the snapshot ended while it was made"}')
    except (OSError, ValueError) as error:
        answer = {"error": f"the snapshot did not answer: {error}"}
    if "error" in answer:
        ours.close()
        with contextlib.suppress(ChildProcessError):
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
    else:
        ours.settimeout(None)
        snapshots[key] = ours
    return answer


def ask_snapshot(snapshots, request, fds):
    """Pass a kernel request to the snapshot process of its key, and its answer back."""
    channel = snapshots.get(request["snapshot"])
    try:
        if channel is None:
            return {"error": "no such snapshot", "missing": True}
        socket.send_fds(channel, [json.dumps(request).encode()], fds)
        return json.loads(channel.recv(1 << 20) or b'{"error": "the snapshot ended", "missing": true}')
    except OSError as error:
        snapshots.pop(request["snapshot"], None)
        return {"error": f"the snapshot ended: {error}", "missing": True}
    finally:
        for fd in fds:
            os.close(fd)


def run_snapshot(request, fds, channel):
    """In the snapshot process: join the sandbox's file system, run the set-up cells, answer their output,
    then fork a kernel from this state for each request that the template passes on (never returns)."""
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "dying with the template")
    tasks = os.open("/proc/self/task", os.O_RDONLY | os.O_DIRECTORY)  # the sandbox's /proc does not show it
    check(libc.setns(fds[NAMESPACES.index("mnt")], 0), "joining the sandbox's file system")
    for fd in fds:
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["environment"])
    sys.path.insert(0, request["cwd"])
    exec(compile(request["prelude"], "<prelude>", "exec"), {"__name__": "__prelude__"})
    user_ns = {"__name__": "__main__", "__builtins__": __builtins__}
    outputs = [run_cell(source, user_ns) for source in request["cells"]]
    threads = len(os.listdir(tasks))
    if threads != 1:  # a process with threads cannot fork safely
        channel.send(json.dumps({"error": f"the set-up cells left {threads - 1} threads running"}).encode())
        os._exit(0)
    if len(json.dumps(outputs)) > 100_000:  # an answer is one message of the template's socket
        outputs = [[{"output_type": "stream", "name": "stdout", "text": "[output too long to keep]\n"}]
                   for _ in outputs]
    channel.send(json.dumps({"outputs": outputs}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 65536, len(NAMESPACES) + 1)
        if not message:
            os._exit(0)  # the template ended
        try:
            answer = {**fork_kernel(json.loads(message), fds[:-1], fds[-1], user_ns), "outputs": outputs}
        except Exception:
            answer = {"error": traceback.format_exc(limit=2)}
        channel.send(json.dumps(answer).encode())


def run_cell(source, user_ns, limit=20_000):
    """Run a cell's code as a kernel would (the value of a last expression is its result); return its
    outputs as a notebook has them, each text cut at `limit` characters."""
    printed = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    errors, result = [], None
    try:
        with contextlib.redirect_stdout(printed["stdout"]), contextlib.redirect_stderr(printed["stderr"]):
            tree = ast.parse(source)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, "<cell>", "exec"), user_ns)
            if last is not None:
                result = eval(compile(ast.Expression(last.value), "<cell>", "eval"), user_ns)
    except Exception as error:
        lines = traceback.format_exception(error)
        errors.append({"output_type": "error", "ename": type(error).__name__, "evalue": str(error)[:limit],
                       "traceback": [line[:limit] for line in lines[-10:]]})
    outputs = [{"output_type": "stream", "name": name, "text": text.getvalue()[:limit]}
               for name, text in printed.items() if text.getvalue()] + errors
    if result is not None:
        data = {"text/plain": repr(result)[:limit]}
        with contextlib.suppress(Exception):
            if hasattr(result, "_repr_html_") and (html := result._repr_html_()):
                data["text/html"] = html[:limit]
        outputs.append({"output_type": "execute_result", "data": data, "metadata": {},
                        "execution_count": None})
    return outputs


def main():
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "dying with the grader")
    for module in sys.argv[2:]:
        importlib.import_module(module)
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
