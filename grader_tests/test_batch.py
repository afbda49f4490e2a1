"""`course grade`: a whole class graded in parallel, broken and hostile submissions included, with the
gradebook a serial `nbgrader autograde` would leave, a report TAs can open, and a Dask variant."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from nbgrader.api import Gradebook

from coursetools.course import copy_course, nbgrader, notebook_path
from coursetools.examples import submit, submit_examples

ASSIGNMENTS = ["linear_network", "logistic_network"]
HONEST = ["example-correct", "example-mistakes", "example-untouched"]
# broken submissions of linear_network: what the report must say, and which cells keep their points
BROKEN = {
    "broken-json": ("not a readable notebook", "none"),
    "renamed": ("is missing (renamed or not handed in)", "none"),
    "dies": ("the kernel died", "none"),
    "slow": ("notebook time limit", "none"),
    "deleted-cell": ("grade cells deleted or not run: feedforward_hidden", "all but feedforward_hidden"),
    "duplicated-cell": ("a second cell 'add_bias_hidden' was removed", "all"),
    "link": ("data.csv is not a regular file", "all"),
    "memory-bomb": ("ran out of memory", "all but add_bias"),
}
NOTEBOOK_TIME_LIMIT = 8  # seconds: the "slow" submission sleeps 60 s in a single cell


def course_command(root, *args):
    command = [str(Path(sys.executable).parent / "course"), *args]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)


def new_course(root, assignments=ASSIGNMENTS, notebook_time_limit=NOTEBOOK_TIME_LIMIT, cell_time_limit=None):
    """A course in `root` with its release built and the example students' submissions handed in."""
    copy_course(ROOT, root)
    # as in the repository, every assignment's checks.py is a link to one shared file
    shared = root / "shared_checks.py"
    shutil.copy(root / "source" / assignments[0] / "checks.py", shared)
    for checks in (root / "source").glob("*/checks.py"):
        checks.unlink()
        checks.symlink_to(os.path.relpath(shared, checks.parent))
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.GradingKernelManager.notebook_timeout = {notebook_time_limit}\n")
        if cell_time_limit:
            config.write(f"c.Execute.timeout = {cell_time_limit}\n")
    nbgrader(root, "generate_assignment", "*", "--force")
    nbgrader(root, "generate_solution", "*", "--force")
    for assignment in assignments:
        submit_examples(root, assignment)
    return root


def with_answer_prefix(solution, cell_id, code):
    notebook = nbformat.from_dict(json.loads(json.dumps(solution)))
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == cell_id:
            cell.source = f"{code}\n{cell.source}"
    return notebook


def submit_broken(root):
    solution = nbformat.read(notebook_path(root, "solutions", "linear_network"), as_version=4)
    folder = submit(root, "linear_network", "broken-json", solution).parent
    (folder / "linear_network.ipynb").write_text("{ this is not json")
    folder = submit(root, "linear_network", "renamed", solution).parent
    (folder / "linear_network.ipynb").rename(folder / "my_network.ipynb")
    submit(root, "linear_network", "dies", with_answer_prefix(solution, "add_bias", "import os\nos._exit(1)"))
    sleeper = with_answer_prefix(solution, "add_bias", "import time\ntime.sleep(60)")
    submit(root, "linear_network", "slow", sleeper)
    deleted = nbformat.from_dict(json.loads(json.dumps(solution)))
    deleted.cells = [c for c in deleted.cells
                     if c.metadata.get("nbgrader", {}).get("grade_id") != "feedforward_hidden"]
    submit(root, "linear_network", "deleted-cell", deleted)
    duplicated = nbformat.from_dict(json.loads(json.dumps(solution)))
    index = next(i for i, c in enumerate(duplicated.cells)
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "add_bias_hidden")
    copy = nbformat.from_dict(json.loads(json.dumps(duplicated.cells[index])))
    copy.id, copy.source = "a-second-copy", '"""passes whatever add_bias does"""'
    duplicated.cells.insert(index, copy)
    submit(root, "linear_network", "duplicated-cell", duplicated)
    # a list that grows without end, stopped by the kernel's memory limit; at the top level of a cell it
    # would keep the memory and stall the kernel until the notebook time limit
    bomb = "def hoard():\n    kept = []\n    while True:\n        kept.append(np.empty(10**8))\n\n\nhoard()"
    submit(root, "linear_network", "memory-bomb", with_answer_prefix(solution, "add_bias", bomb))
    folder = submit(root, "linear_network", "link", solution).parent
    (folder / "data.csv").symlink_to("/etc/passwd")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    parallel = new_course(tmp_path_factory.mktemp("parallel"))
    submit_broken(parallel)
    run = course_command(parallel, "grade", *ASSIGNMENTS, "--workers", "2", "--quiet")
    serial = new_course(tmp_path_factory.mktemp("serial"))
    nbgrader(serial, "autograde", "*", "--force")
    return parallel, serial, run


def grades(root, students, assignments=ASSIGNMENTS):
    """{(student, assignment, cell): (auto score, needs manual grade, comment)} from a gradebook."""
    rows = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for assignment in assignments:
            for student in students:
                submission = gradebook.find_submission(assignment, student)
                for notebook in submission.notebooks:
                    comments = {c.name: c.auto_comment for c in notebook.comments}
                    for grade in notebook.grades:
                        rows[(student, assignment, grade.name)] = (
                            grade.auto_score, grade.needs_manual_grade, comments.get(grade.name))
                    rows[(student, assignment, "flagged")] = notebook.flagged
    return rows


def autograded_cells(root, student, assignment):
    """The autograded notebook's cells, with the folder it was graded in replaced by a placeholder."""
    text = notebook_path(root, "autograded", assignment, student).read_text()
    text = re.sub(r"/[^\s\"'\\]*?/autograded/", "<course>/autograded/", text)
    return [(c["cell_type"], c["source"], c.get("outputs")) for c in json.loads(text)["cells"]]


def test_exit_code_says_that_submissions_need_attention(graded):
    parallel, _, run = graded
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"graded {len(HONEST) * len(ASSIGNMENTS) + len(BROKEN)} submissions" in run.stdout


def test_parallel_gradebook_equals_a_serial_nbgrader_run(graded):
    parallel, serial, _ = graded
    assert grades(parallel, HONEST) == grades(serial, HONEST)
    for student in HONEST:
        for assignment in ASSIGNMENTS:
            ours, theirs = (autograded_cells(root, student, assignment) for root in (parallel, serial))
            assert ours == theirs, f"autograded/{student}/{assignment} differs from the serial run's"


@pytest.mark.parametrize("student", sorted(BROKEN))
def test_broken_submission_is_reported_and_gets_only_the_points_it_earned(graded, student):
    parallel, serial, run = graded
    reason, keeps = BROKEN[student]
    line = next((line for line in run.stdout.splitlines() if line.strip().startswith(f"{student} /")), "")
    assert reason in line, run.stdout
    with open(parallel / "grading_flags.csv") as file:
        flags = {(r["student"], r["assignment"]): r["reason"] for r in csv.DictReader(file)}
    assert reason in flags[(student, "linear_network")]
    got = grades(parallel, [student], ["linear_network"])
    reference = grades(serial, ["example-correct"], ["linear_network"])
    assert got[(student, "linear_network", "flagged")] is True
    for (_, _, cell), value in reference.items():
        if cell == "flagged" or value[0] is None:
            continue  # the flag, and the written answer, graded by hand
        score, earned = value[0], got[(student, "linear_network", cell)][0]
        kept = keeps == "all" or (keeps.startswith("all but") and not cell.startswith(keeps.split()[-1]))
        assert earned == (score if kept else 0), cell


def test_report_lists_flagged_submissions_and_cells_waiting_for_a_ta(graded):
    parallel, _, _ = graded
    page = (parallel / "class_report.html").read_text()
    for student in BROKEN:
        assert student in page
    assert 'id="distribution"' in page and "data:image/png;base64," in page
    with open(parallel / "class_report.csv") as file:
        cells = list(csv.DictReader(file))
    assert {row["cell"] for row in cells} >= {"add_bias_columns", "sigmoid_stable"}


def test_report_renders_in_headless_chromium(graded, tmp_path):
    from playwright.sync_api import sync_playwright

    parallel, _, _ = graded
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile",  # a fresh profile
            executable_path="/usr/bin/chromium",  # Debian's Chromium: no browser download
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto((parallel / "class_report.html").as_uri())
        plot_width = page.eval_on_selector("#distribution", "img => img.complete && img.naturalWidth")
        cell_rows = page.locator("#cells tbody tr").count()
        flagged = page.locator("#flagged tbody tr").all_inner_texts()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert plot_width > 100, "the score distribution plot did not render"
    assert cell_rows >= 20
    assert any("broken-json" in row and "not a readable notebook" in row for row in flagged)


def test_dask_cluster_grades_like_serial_nbgrader(graded, tmp_path):
    from dask.distributed import LocalCluster

    _, serial, _ = graded
    root = new_course(tmp_path / "dask")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run = course_command(root, "grade", "linear_network", "--dask-scheduler", cluster.scheduler_address,
                             "--quiet")
    assert run.returncode == 0, run.stdout + run.stderr
    students = HONEST
    assert grades(root, students, ["linear_network"]) == grades(serial, students, ["linear_network"])


def test_failed_regrade_leaves_no_old_scores(graded):
    """Runs last: it changes the parallel course."""
    parallel, _, _ = graded
    assert grades(parallel, ["example-correct"], ["linear_network"])[
        ("example-correct", "linear_network", "add_bias_columns")][0] == 1
    notebook_path(parallel, "submitted", "linear_network", "example-correct").write_text("not a notebook")
    run = course_command(parallel, "grade", "linear_network", "--workers", "2", "--quiet")
    assert run.returncode == 1
    after = grades(parallel, ["example-correct"], ["linear_network"])
    auto = [value[0] for (_, _, cell), value in after.items() if cell != "flagged" and value[0] is not None]
    assert auto and all(score == 0 for score in auto)
    assert after[("example-correct", "linear_network", "flagged")] is True
