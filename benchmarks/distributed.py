"""What grading on a Dask cluster costs beside the local worker processes: the class of
benchmarks/batch_grading.py graded by `course grade --workers 2` and by `course grade --dask-scheduler` with
a scheduler and two `dask worker` processes (one thread each) on this machine, in one run. The local pool
runs first and again at the end (the machine's speed drifts): the ratio divides by the mean of the two.

Run by hand:  .venv/bin/python benchmarks/distributed.py [--copies 2]
The cluster listens on 127.0.0.1 only, on ports that the scheduler picks; its processes are started with
this environment's Python, in the scratch course, and stopped at the end; grading starts once the workers
are up and idle. The same cluster is then run again with its workers started with
`--preload coursetools.distributed` (the grading modules imported and the kernel template started as the
worker starts, not in its first job). From the scheduler's task stream it also prints where a worker's
time goes: the seconds per job (the first job of each worker apart, beside the other jobs of the same
assignment), the time between jobs, and how large a job is (what the coordinator sends).
"""

import argparse
import contextlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import measured
import psutil
from batch_grading import course_grade, make_class, points, timed

from coursetools import batch
from coursetools.course import ONE_BLAS_THREAD, assignments

# this file has the name of Dask's own package: its folder goes off the path before dask.distributed is
# imported, which would otherwise import this file again in its place
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

WORKERS = 2
TARGET = 1.1  # distributed / local, at most
CLUSTERS = [  # name, the workers' --preload, label
    ("dask", None, f"course grade --dask-scheduler ({WORKERS} dask workers)"),
    ("dask-preloaded", "coursetools.distributed",
     "the same, workers --preload coursetools.distributed"),
]


@contextlib.contextmanager
def cluster(course, folder, workers=WORKERS, preload=None):
    """A Dask scheduler and `workers` worker processes (one thread each, with the module `preload` if
    given) on 127.0.0.1, run with this environment's Python in `course`; yield the scheduler's address
    once the workers are up and idle; stop them all at the end."""
    from dask.distributed import Client

    environment = {**os.environ, **ONE_BLAS_THREAD}
    processes = []

    def start(name, *arguments):
        with open(folder / f"{name}.log", "wb") as log:
            processes.append(subprocess.Popen([sys.executable, "-m", "dask", *arguments], cwd=course,
                                              env=environment, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))

    address_file = folder / "scheduler.json"
    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(address_file))
        deadline = time.monotonic() + 120
        while not address_file.is_file() or not address_file.read_text().strip():
            if processes[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the scheduler did not start:\n{(folder / 'scheduler.log').read_text()}")
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:"), address
        for number in range(1, workers + 1):
            start(f"worker-{number}", "worker", address, "--nthreads", "1", "--nworkers", "1",
                  "--host", "127.0.0.1", "--no-dashboard", "--name", f"worker-{number}",
                  "--local-directory", str(folder / f"worker-{number}"),
                  *(["--preload", preload] if preload else []))
        with Client(address, timeout=120) as client:
            client.wait_for_workers(workers, timeout=180)
        settle(processes)
        yield address
    finally:
        for process in reversed(processes):  # workers first, then the scheduler
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)  # its own session: the nanny's worker with it
                process.wait()


def settle(processes, timeout=120):
    """Wait until `processes` and everything under them are idle (under a tenth of a core for half a
    second): a cluster's workers are up before grading begins, and what they do as they start (a preload's
    imports) is not grading's time."""
    def cpu():
        seconds = 0.0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                tree = psutil.Process(process.pid)
                for member in [tree, *tree.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = member.cpu_times()
                        seconds += times.user + times.system
        return seconds

    deadline, before = time.monotonic() + timeout, cpu()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu()
        if now - before < 0.05:
            return
        before = now


def failing_loudly(action):
    """`action` (a `course grade`), with what the command printed when it fails."""
    def run():
        try:
            action()
        except subprocess.CalledProcessError as error:
            print(f"{error.cmd} exited with {error.returncode}:\n"
                  f"{(error.stdout or b'').decode()[-3000:]}\n{(error.stderr or b'').decode()[-3000:]}")
            raise
    return run


def task_stream(address):
    """A client that has the scheduler record its task stream from now on; the stream is read after."""
    from dask.distributed import Client

    client = Client(address, timeout=60)
    client.get_task_stream()  # installs the scheduler's task stream plugin: it records from here
    return client


def worker_side(client, wall, submissions):
    """Print where the workers' time went, from the scheduler's task stream. `submissions`: the jobs'
    (assignment, student) in the order they were sent, which is the order they start in."""
    tasks = [task for task in client.get_task_stream() if task["key"].startswith("grade_one")]
    if not tasks:
        print("the task stream recorded no grading job")
        return
    by_worker, assignment = {}, {}
    for task in tasks:
        compute = next(part for part in task["startstops"] if part["action"] == "compute")
        by_worker.setdefault(task["worker"], []).append((compute["start"], compute["stop"], task))
        task["seconds"] = compute["stop"] - compute["start"]
    for task, (name, _) in zip(sorted(tasks, key=lambda task: task["startstops"][-1]["start"]), submissions,
                               strict=False):
        assignment[task["key"]] = name
    firsts = []
    for runs in by_worker.values():
        task = min(runs, key=lambda run: run[0])[2]
        alike = [other["seconds"] for other in tasks
                 if other is not task and assignment.get(other["key"]) == assignment.get(task["key"])]
        firsts.append(f"{task['seconds']:.1f} s ({assignment.get(task['key'])}: its other jobs median "
                      f"{statistics.median(alike):.1f} s)" if alike else f"{task['seconds']:.1f} s")
    first, rest, gaps, other = [], [], [], {}
    for runs in by_worker.values():
        runs.sort(key=lambda run: run[0])
        first.append(runs[0][1] - runs[0][0])
        rest += [stop - start for start, stop, _ in runs[1:]]
        gaps += [later[0] - earlier[1] for earlier, later in zip(runs, runs[1:], strict=False)]
        for _, _, task in runs:
            for part in task["startstops"]:
                if part["action"] != "compute":
                    other[part["action"]] = other.get(part["action"], 0.0) + part["stop"] - part["start"]
    busy = sum(first) + sum(rest)
    print(f"worker side: {len(tasks)} jobs on {len(by_worker)} workers, {busy:.1f} s computing in all "
          f"({busy / (len(by_worker) * wall):.0%} of the workers' time in the run)")
    print(f"  first job of each worker: {'; '.join(firsts)}")
    if rest:
        print(f"  the other jobs: median {statistics.median(rest):.1f} s, worst {max(rest):.1f} s")
    if gaps:
        print(f"  between two jobs of a worker: median {statistics.median(gaps) * 1000:.0f} ms, "
              f"worst {max(gaps) * 1000:.0f} ms")
    if other:
        print("  beyond computing: " + ", ".join(f"{action} {seconds:.2f} s"
                                                 for action, seconds in other.items()))


def job_sizes(root):
    """Print how large a pickled job is: what the coordinator sends for each submission."""
    submissions, _ = batch.survey(root, assignments(root), assignments(root))
    sizes = sorted(len(pickle.dumps(job)) for job in batch.make_jobs(root, submissions))
    print(f"a job as sent: median {statistics.median(sizes) / 1024:.0f} kB, "
          f"largest {sizes[-1] / 1024:.0f} kB ({len(sizes)} jobs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args()
    os.environ.update(ONE_BLAS_THREAD)
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as folder:
        folder = Path(folder)
        roots = {name: folder / name for name in ("local", "dask")}
        for root in roots.values():
            root.mkdir()
            handed_in = make_class(root, args.copies)
        print(f"{len(handed_in)} submissions, {os.cpu_count()} cores, {WORKERS} workers either way")
        local, scores = failing_loudly(course_grade(roots["local"], "--workers", str(WORKERS))), {}
        first = timed(f"course grade --workers {WORKERS}", local)
        distributed, (order, _) = {}, batch.survey(roots["dask"], assignments(roots["dask"]),
                                                   assignments(roots["dask"]))
        for name, preload, label in CLUSTERS:
            logs = folder / f"cluster-{name}"  # the scheduler's address file and the processes' logs
            logs.mkdir()
            with cluster(roots["dask"], logs, preload=preload) as address:
                client = task_stream(address)
                try:
                    distributed[name] = timed(label, failing_loudly(
                        course_grade(roots["dask"], "--dask-scheduler", address)))
                    worker_side(client, distributed[name], order)
                finally:
                    client.close()
            scores[name] = points(roots["dask"])
        again = timed(f"course grade --workers {WORKERS}, again", local)
        job_sizes(roots["dask"])
        scores["local"] = points(roots["local"])

    local = (first + again) / 2
    print(f"\nlocal pool, mean of the first and the last: {local:.1f} s ({local / len(handed_in):.1f} s per "
          "submission)")
    for name, _, label in CLUSTERS:
        print(f"{label:<56} / local: {distributed[name] / local:5.2f}" + (
              f"   (target: at most {TARGET})" if name == "dask" else ""))
    for name, _, _ in CLUSTERS:
        differ = sorted(key for key in scores["local"].keys() | scores[name].keys()
                        if scores["local"].get(key) != scores[name].get(key))
        print(f"points, {name}: {sum(scores[name].values()):.1f}, local {sum(scores['local'].values()):.1f}; "
              + (f"{len(differ)} submissions differ:" if differ else "the same for every submission"))
        for key in differ:
            print(f"  {key[1]} {key[0]}: local {scores['local'].get(key)}, on Dask {scores[name].get(key)}")


if __name__ == "__main__":
    with measured.recorded(__file__, __doc__):
        main()
