"""How fast a class is graded, every way side by side on the same synthetic class, in one run:
plain notebook execution (the lower bound), `nbgrader autograde` as nbgrader ships it (tests in the
student's kernel, no sandbox), `nbgrader autograde` with this course's configuration, and `course grade`
at 1 and at N workers; at 1 worker also the old way (tests in the student's kernel) and without the
sandbox. Beside each way's seconds, its floor: the CPU seconds spent in the students' own cells and calls,
measured in the kernels (recorded by the course's autograde in every autograded notebook; measured here
around the student's code cells for plain execution, whose tests run in the kernel and are not counted).
Then what a call through the judge costs beyond the student's function, each way's points, and how long
a grading kernel takes from the request to ready with the libraries imported: as grading has it (a
spare made while the notebook before ran), forked when asked for, and Python started anew.

Run by hand:  .venv/bin/python benchmarks/batch_grading.py [--copies 2] [--workers 2]
The class: every assignment, handed in by the example students (correct and with mistakes), `copies`
times each: 5 assignments x 2 examples x 2 copies = 20 submissions. Every kernel runs with one BLAS thread.
"""

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import measured
import nbformat
import psutil
from nbclient import NotebookClient
from nbgrader.api import Gradebook

from coursetools.course import (
    assignments,
    copy_course,
    find_root,
    gradebook_url,
    is_student_code,
    load_config,
    nbgrader,
    notebook_path,
)
from coursetools.examples import fill_answers, read_answers, submit

# nbgrader as it ships: only what a course must say, and the cell time limit that this course uses
STOCK_CONFIG = """c = get_config()
c.CourseDirectory.course_id = "lesson24-deep-learning-fundamentals-1"
c.CourseDirectory.solution_directory = "solutions"
c.Execute.timeout = 60
"""
# The old way: nbgrader's Execute runs the restored notebook, hidden tests included, in the student's
# (sandboxed) kernel, which is given checks.py
OLD_WAY = """
from nbgrader.preprocessors import Execute
c.Autograde.autograde_preprocessors = [Execute, *c.Autograde.autograde_preprocessors[1:]]
"""
# course grade at 1 and at 2 workers / plain execution; every way at one worker / its floor
TARGETS = {"ours-1": 0.5, "ours-n": 0.3, "floor": 1.5}
CALL_LOG = re.compile(r": (\d+) calls to the student's kernel, ([\d.]+) s in all; beyond the student's "
                      r"functions a call cost median ([\d.]+) ms, worst ([\d.]+) ms, ([\d.]+) s in all")


def make_class(root, copies):
    """A fresh course in `root` with the synthetic class handed in; return [(assignment, student)]."""
    copy_course(find_root(Path(__file__).parent), root)
    nbgrader(root, "generate_assignment", "*", "--force")
    nbgrader(root, "generate_solution", "*", "--force")
    handed_in = []
    for assignment in assignments(root):
        solution = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
        mistakes = fill_answers(solution, read_answers(root / "examples" / "mistakes" / f"{assignment}.py"))
        for copy in range(copies):
            for kind, notebook in (("correct", solution), ("mistakes", mistakes)):
                student = f"student-{kind}-{copy}"
                submit(root, assignment, student, notebook)
                handed_in.append((assignment, student))
    return handed_in


def hand_out_checks(root, handed_in):
    """Put checks.py beside every submission: a kernel that runs the tests itself needs it."""
    for assignment, student in handed_in:
        shutil.copy(root / "source" / assignment / "checks.py", root / "submitted" / student / assignment)


def plain_execution(root, handed_in):
    """Execute every submitted notebook with nbclient, one after another: no grading at all. Return the
    kernels' CPU seconds in the student's code cells (the test cells, which run in the kernel here and do
    more than call the student's functions, are not counted)."""
    student_cpu = 0.0
    for assignment, student in handed_in:
        folder = root / "submitted" / student / assignment
        notebook = nbformat.read(folder / f"{assignment}.ipynb", as_version=4)
        client = NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(folder)}})
        before = {}

        def cell_starts(cell, cell_index, client=client, before=before):
            if is_student_code(cell):
                before[cell_index] = kernel_cpu(client.km.provisioner.pid)

        def cell_ended(cell, cell_index, execute_reply, client=client, before=before):
            nonlocal student_cpu
            if cell_index in before:
                student_cpu += kernel_cpu(client.km.provisioner.pid) - before.pop(cell_index)

        client.on_cell_execute, client.on_cell_executed = cell_starts, cell_ended
        client.execute()
    return student_cpu


def kernel_cpu(pid):
    """CPU seconds (user and system) of a kernel's process and its children so far."""
    kernel = psutil.Process(pid)
    times = kernel.cpu_times()
    seconds = times.user + times.system + times.children_user + times.children_system
    for child in kernel.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            seconds += times.user + times.system
    return seconds


def recorded_student_cpu(root):
    """The students' CPU seconds that the course's autograde recorded in the autograded notebooks of `root`
    (its student's own cells and the calls of the tests to the student's functions); None when no notebook
    has it (a way that does not grade with the course's autograde)."""
    recorded = [nbformat.read(path, as_version=4).metadata.get("grading", {}).get("student_cpu_seconds")
                for path in sorted(root.glob("autograded/*/*/*.ipynb"))]
    recorded = [seconds for seconds in recorded if seconds is not None]
    return sum(recorded) if recorded else None


def points(root):
    """{(assignment, student): points} from the course's gradebook."""
    with Gradebook(gradebook_url(root)) as gradebook:
        return {(submission.assignment.name, submission.student.id): round(submission.score, 6)
                for assignment in gradebook.assignments for submission in assignment.submissions}


def timed(label, action):
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    print(f"  {label:<48} {seconds:8.1f} s", flush=True)
    return seconds


def course_grade(root, *options):
    course = Path(sys.executable).parent / "course"
    return lambda: subprocess.run([str(course), "grade", "--quiet", *options], cwd=root,
                                  capture_output=True, check=True)


IMPORTS = "import numpy, pandas, sklearn.neural_network, sklearn.model_selection, matplotlib.pyplot"


def kernel_ready(root, count, way):
    """Seconds from asking for a grading kernel (the course's configuration) to its answer to a cell that
    imports the libraries, `count` times after a first one (which starts the template). `way`: "spare"
    (as grading does: the kernel was made while the notebook before ran), "fork" (forked when asked for)
    or "anew" (Python started anew)."""
    from coursetools.grading import kernel

    config = load_config(root)
    config.GradingKernelManager.warm = way != "anew"
    config.GradingKernelManager.spare = way == "spare"

    async def once(work):
        manager = kernel.GradingKernelManager(config=config)
        started = time.perf_counter()
        await manager.start_kernel(cwd=work)
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=120)
        await client.execute_interactive(IMPORTS, timeout=120)
        seconds = time.perf_counter() - started
        while way == "spare" and not kernel.spare_ready():  # the notebook would run meanwhile
            await asyncio.sleep(0.05)
        client.stop_channels()
        await manager.shutdown_kernel(now=False)
        return seconds

    async def all_of_them():
        with tempfile.TemporaryDirectory(prefix="ready-") as work:
            await once(work)
            return [await once(work) for _ in range(count)]

    return asyncio.run(all_of_them())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", nargs="+", metavar="WAY", help="run only these ways (plain is always run): "
                        "stock serial ours-1 old-1 bare-1 ours-n")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    ways = {  # name: (label, how it grades)
        "plain": ("plain nbclient execution (no grading)", None),
        "stock": ("nbgrader autograde, as nbgrader ships it", None),
        "serial": ("nbgrader autograde, this course's config", None),
        "ours-1": ("course grade --workers 1", ("--workers", "1")),
        "old-1": ("course grade --workers 1, tests in the kernel", ("--workers", "1")),
        "bare-1": ("course grade --workers 1 --no-sandbox", ("--workers", "1", "--no-sandbox")),
        "ours-n": (f"course grade --workers {args.workers}", ("--workers", str(args.workers))),
    }
    if args.only:
        ways = {name: way for name, way in ways.items() if name == "plain" or name in args.only}
    results, floors, log = {}, {}, ""
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        roots = {name: Path(folder) / name for name in ways}
        for root in roots.values():
            root.mkdir()
            handed_in = make_class(root, args.copies)
        for name in {"plain", "stock", "old-1"} & roots.keys():
            hand_out_checks(roots[name], handed_in)
        if "stock" in roots:
            (roots["stock"] / "nbgrader_config.py").write_text(STOCK_CONFIG)
        if "old-1" in roots:
            with open(roots["old-1"] / "nbgrader_config.py", "a") as config:
                config.write(OLD_WAY)
        print(f"{len(handed_in)} submissions, {os.cpu_count()} cores")

        def run_plain():
            floors["plain"] = plain_execution(roots["plain"], handed_in)

        for name, (label, options) in ways.items():
            if name == "plain":
                action = run_plain
            elif name in ("stock", "serial"):
                def action(root=roots[name]):
                    nonlocal log
                    log += nbgrader(root, "autograde", "*", "--force", quiet=False, capture=True)
            else:
                action = course_grade(roots[name], *options)
            results[name] = timed(label, action)
        # the machine's speed drifts during a run: plain execution again at the end, and the mean of the
        # two is what the ratios divide by
        first_floor = floors["plain"]
        again = timed("plain nbclient execution, again", run_plain)
        results["plain"] = (results["plain"] + again) / 2
        floors["plain"] = (first_floor + floors["plain"]) / 2
        scores = {name: points(roots[name]) for name in ways if name != "plain"}
        floors.update({name: recorded_student_cpu(roots[name]) for name in ways if name != "plain"})

    n = len(handed_in)
    print("\nper submission:", ", ".join(f"{name} {seconds / n:.1f} s" for name, seconds in results.items()))
    plain = results["plain"]
    print(f"plain execution, mean of the first and the last: {plain:.1f} s")
    print("the floor: CPU seconds in the students' own cells and calls, measured in the kernels (plain "
          "execution: the student's code cells only, its tests run in the kernel)")
    print(f"\n{'':<48} {'seconds':>8} {'/ plain':>8} {'/ floor':>8} {'floor':>8}")
    for name, seconds in results.items():
        floor = floors.get(name)
        print(f"{ways[name][0]:<48} {seconds:8.1f} {seconds / plain:8.2f} "
              + (f"{seconds / floor:8.2f} {floor:8.1f}" if floor else f"{'-':>8} {'-':>8}"))
    print(f"targets: course grade --workers 1 at most {TARGETS['ours-1']} x plain, at 2 workers at most "
          f"{TARGETS['ours-n']} x plain; every way at one worker within {TARGETS['floor']} x its floor")
    missing = [ways[name][0] for name in results if name != "ours-n" and not floors.get(name)]
    if missing:
        print(f"  no floor recorded (not graded by the course's autograde): {'; '.join(missing)}")
    off = [f"{ways[name][0]} / plain {results[name] / plain:.2f}" for name in ("ours-1", "ours-n")
           if name in results and results[name] / plain > TARGETS[name]]
    off += [f"{ways[name][0]} / floor {results[name] / floors[name]:.2f}" for name in results
            if name != "ours-n" and floors.get(name) and results[name] / floors[name] > TARGETS["floor"]]
    print("  over target: " + ("; ".join(off) if off else "none"))
    if {"ours-1", "old-1"} <= results.keys():
        print(f"the judge at 1 worker / the old way at 1 worker:  {results['ours-1'] / results['old-1']:.2f}")
    if {"ours-1", "bare-1"} <= results.keys():
        print(f"sandbox: {(results['ours-1'] - results['bare-1']) / n * 1000:+.0f} ms per notebook")
    if {"stock", "ours-n"} <= results.keys():
        print(f"nbgrader as shipped / course grade at {args.workers} workers: "
              f"{results['stock'] / results['ours-n']:.2f}")

    calls = [match.groups() for match in CALL_LOG.finditer(log)]
    if calls:
        per_notebook = [int(count) for count, *_ in calls]
        medians = [float(median) for _, _, median, _, _ in calls]
        worst = max(float(worst) for *_, worst, _ in calls)
        spent = [float(total) for *_, total in calls]
        print(f"\ncalls through the judge ({len(calls)} notebooks graded by nbgrader autograde): "
              f"{statistics.median(per_notebook):.0f} per notebook (at most {max(per_notebook)}); beyond the "
              f"student's function a call costs median {statistics.median(medians):.1f} ms, worst "
              f"{worst:.1f} ms; per notebook {1000 * statistics.median(spent):.0f} ms in all "
              f"(at most {1000 * max(spent):.0f} ms)")

    ready = {"spare": "made while the notebook before ran", "fork": "forked from the template when asked",
             "anew": "Python started anew (no template)"}
    for way, label in ready.items():
        seconds = sorted(kernel_ready(Path(find_root(Path(__file__).parent)), 10, way))
        print(f"kernel ready with the libraries imported, {label:<36} median "
              f"{statistics.median(seconds):.3f} s, worst {seconds[-1]:.3f} s"
              + ("   (target: at most 0.2 s)" if way == "spare" else ""))

    reference = next(iter(scores.values()), {})
    for name, found in scores.items():
        differ = sorted(key for key in reference if found.get(key) != reference[key])
        print(f"points, {ways[name][0]:<48} {sum(found.values()):7.1f}"
              + (f"   differs from {next(iter(scores))} on {differ[:4]}" if differ else ""))


if __name__ == "__main__":
    with measured.recorded(__file__, __doc__):
        main()
