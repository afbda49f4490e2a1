"""`course grade`: a whole class graded in parallel, broken and hostile submissions included, with the
gradebook a serial `nbgrader autograde` would leave, feedback for every student, a report TAs can open,
and a Dask variant."""

import csv
import html
import json
import os
import re
import shutil

import nbformat
import pytest
from conftest import (
    CLASSES_GROUP,
    ROOT,
    automatic_scores,
    course_command,
    flags,
    grades,
    new_course,
    with_answer_prefix,
)
from nbgrader.api import Gradebook
from sqlalchemy import text

from coursetools import findings, messages
from coursetools.batch import JOB_GRADEBOOK, make_jobs
from coursetools.course import grade_id, gradebook_url, nbgrader, notebook_path, read_tree
from coursetools.examples import submit
from coursetools.grading import intake
from coursetools.grading.limits import SubmissionLimits
from coursetools.messages import NOT_GRADED

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENTS = ["linear_network"]
HONEST = ["example-correct", "example-mistakes", "example-untouched"]
# broken submissions of linear_network: what the report must say, and which cells keep their points
BROKEN = {
    "broken-json": ("not a readable notebook", "none"),
    "renamed": ("missing (renamed or not handed in): found my_network.ipynb; expected linear_network.ipynb",
                "none"),
    "dies": ("the kernel died", "none"),
    "slow": ("notebook time limit", "none"),
    "duplicated-cell": ("a second cell 'add_bias_hidden' was removed", "all"),
    "link": ("data.csv is not a regular file", "all"),
    "memory-bomb": ("ran out of memory", "all but add_bias"),
}
# a test cell deleted by the student is put back and graded: a note, all points of a correct answer
REPAIRED = {
    "deleted-cell": "test cells missing from the notebook were put back and graded: feedforward_hidden"}
# handed in where no assignment is: (student, what was found, what the report must say)
STRAYS = [
    ("misspelt", "linear_netwrk", "not an assignment of this course (did you mean linear_network?)"),
    ("no-folder", "linear_network.ipynb", "expected submitted/no-folder/linear_network/linear_network.ipynb"),
]
# seconds: the "slow" submission sleeps 120 s in a single cell; honest notebooks take a few seconds, more
# when the machine is busy
NOTEBOOK_TIME_LIMIT = 30


def submit_broken(root):
    solution = nbformat.read(notebook_path(root, "solutions", "linear_network"), as_version=4)
    folder = submit(root, "linear_network", "broken-json", solution).parent
    (folder / "linear_network.ipynb").write_text("{ this is not json")
    folder = submit(root, "linear_network", "renamed", solution).parent
    (folder / "linear_network.ipynb").rename(folder / "my_network.ipynb")
    submit(root, "linear_network", "dies", with_answer_prefix(solution, "add_bias", "import os\nos._exit(1)"))
    sleeper = with_answer_prefix(solution, "add_bias", "import time\ntime.sleep(120)")
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


def submit_strays(root):
    solution = nbformat.read(notebook_path(root, "solutions", "linear_network"), as_version=4)
    folder = submit(root, "linear_network", "misspelt", solution).parent
    folder.rename(folder.parent / "linear_netwrk")
    folder = submit(root, "linear_network", "no-folder", solution).parent
    shutil.move(folder / "linear_network.ipynb", folder.parent / "linear_network.ipynb")
    folder.rmdir()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, course_template):
    """The same class graded by `course grade` (with broken submissions beside it) and by a plain, serial
    `nbgrader autograde`."""
    parallel = new_course(course_template, tmp_path_factory.mktemp("parallel"), ASSIGNMENTS,
                          NOTEBOOK_TIME_LIMIT)
    submit_broken(parallel)
    submit_strays(parallel)
    run = course_command(parallel, "grade", *ASSIGNMENTS, "--student", "*", "--workers", "2", "--quiet")
    serial = new_course(course_template, tmp_path_factory.mktemp("serial"), ASSIGNMENTS, NOTEBOOK_TIME_LIMIT)
    nbgrader(serial, "autograde", "*", "--force")
    return parallel, serial, run


def autograded_cells(root, student, assignment):
    """The autograded notebook's cells, with the folder it was graded in replaced by a placeholder."""
    text = notebook_path(root, "autograded", assignment, student).read_text()
    text = re.sub(r"/[^\s\"'\\]*?/autograded/", "<course>/autograded/", text)
    return [(c["cell_type"], c["source"], c.get("outputs")) for c in json.loads(text)["cells"]]


def test_exit_code_says_that_submissions_need_attention(graded):
    parallel, _, run = graded
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"graded {len(HONEST) * len(ASSIGNMENTS) + len(BROKEN) + len(REPAIRED)} submissions" in run.stdout
    assert "Warning" not in run.stderr, run.stderr  # SQLAlchemy's, nbgrader's: no noise


def test_parallel_gradebook_equals_a_serial_nbgrader_run(graded):
    parallel, serial, _ = graded
    assert grades(parallel, HONEST, ASSIGNMENTS) == grades(serial, HONEST, ASSIGNMENTS)
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
    assert reason in flags(parallel)[(student, "linear_network")]
    got = grades(parallel, [student], ["linear_network"])
    reference = grades(serial, ["example-correct"], ["linear_network"])
    assert got[(student, "linear_network", "flagged")] is True
    for (_, _, cell), value in reference.items():
        if cell == "flagged" or value[0] is None:
            continue  # the flag, and the written answer, graded by hand
        score, earned = value[0], got[(student, "linear_network", cell)][0]
        kept = keeps == "all" or (keeps.startswith("all but") and not cell.startswith(keeps.split()[-1]))
        assert earned == (score if kept else 0), cell


@pytest.mark.parametrize("student", sorted(REPAIRED))
def test_a_deleted_test_cell_is_put_back_and_graded(graded, student):
    """Test cells are the instructor's: a correct answer whose test cell was deleted earns every point."""
    parallel, serial, run = graded
    got = automatic_scores(parallel, student)
    assert got == automatic_scores(serial, "example-correct") and got["flagged"] is False
    assert (student, "linear_network") not in flags(parallel)
    with Gradebook(gradebook_url(parallel)) as gradebook:
        _, recorded = messages.read(gradebook.db)
    noted = recorded[(recorded["student"] == student) & (recorded["kind"] == "tests-put-back")]
    assert list(noted["detail"]) == [REPAIRED[student]]


@pytest.mark.parametrize(("student", "found", "reason"), STRAYS)
def test_what_is_handed_in_outside_an_assignment_is_reported(graded, student, found, reason):
    parallel, _, run = graded
    assert reason in flags(parallel)[(student, found)]
    assert any(line.strip().startswith(f"{student} / {found}: ") and reason in line
               for line in run.stdout.splitlines()), run.stdout
    assert student in (parallel / "class_report.html").read_text()


def feedback_text(root, student, assignment="linear_network"):
    page = (root / "feedback" / student / assignment / f"{assignment}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_every_graded_student_gets_feedback_for_students(graded):
    """course grade writes feedback pages: what a student reads, and nothing meant for TAs or the grader."""
    parallel, _, _ = graded
    students = [*HONEST, *BROKEN]
    for student in students:
        for assignment in ASSIGNMENTS if student in HONEST else ["linear_network"]:
            text = feedback_text(parallel, student, assignment)
            for leak in ("Needs a TA", "/dev/shm", "site-packages", str(parallel), "/autograded/"):
                assert leak not in text, f"{student}/{assignment}: {leak!r} in the feedback"


@pytest.mark.parametrize(("student", "says"), [
    ("broken-json", "could not be read as a notebook"),
    ("renamed", "Your submission has no linear_network.ipynb (found my_network.ipynb), so it scored zero"),
    ("slow", "Your notebook ran longer than the time limit (30 s) and was stopped"),
    ("deleted-cell", "These test cells were missing from your notebook; they were put back and graded: "
                     "feedforward_hidden"),
])
def test_feedback_tells_the_student_why_points_are_missing(graded, student, says):
    parallel, _, _ = graded
    assert says in " ".join(feedback_text(parallel, student).split())


def test_grades_detail_marks_pending_written_answers_and_flagged_submissions(graded):
    parallel, _, _ = graded
    with open(parallel / "grades_detail.csv") as file:
        rows = {(r["student"], r["assignment"]): r for r in csv.DictReader(file)}
    correct = rows[("example-correct", "linear_network")]
    assert (correct["manual"], correct["status"], correct["auto"]) == ("pending", "pending", "13.0")
    broken = rows[("broken-json", "linear_network")]
    assert broken["status"] == "flagged" and "not a readable notebook" in broken["reason"]
    with open(parallel / "grades.csv") as file:  # nbgrader's own export counts the pending answer as 0
        exported = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(file)}
    assert float(exported[("example-correct", "linear_network")]["score"]) == float(correct["score_so_far"])


def test_failure_messages_and_findings_are_recorded_as_the_notebooks_hold_them(graded):
    """The report reads them from the gradebook's database, where grading put them, and opens no notebook:
    they are what the autograded notebooks say, whether `course grade` or plain `nbgrader autograde` graded
    them; `course grade` adds what it found outside a notebook, and a message for every test that did
    not run."""
    parallel, serial, _ = graded
    for root in (parallel, serial):
        with Gradebook(gradebook_url(root)) as gradebook:
            failed, recorded = messages.read(gradebook.db)
        assert len(failed) >= 5  # example-mistakes fails tests
        for path in sorted((root / "autograded").glob("*/*/*.ipynb")):
            student, assignment, name = path.parent.parent.name, path.parent.name, path.stem
            notebook = nbformat.read(path, as_version=4)
            own = of_submission(failed, student, assignment, name)
            cells = dict(zip(own["cell"], own["message"], strict=True))
            written = messages.failure_messages(notebook)
            assert written.items() <= cells.items(), path
            assert {cells[cell] for cell in cells.keys() - written.keys()} <= {NOT_GRADED}, path
            own = of_submission(recorded, student, assignment, name)
            assert set(findings.read(notebook)) <= set(messages.as_findings(own)), path
    with Gradebook(gradebook_url(parallel)) as gradebook:
        failed, recorded = messages.read(gradebook.db)
    never_read = of_submission(failed, "broken-json", "linear_network")
    assert len(never_read) >= 8 and set(never_read["message"]) == {NOT_GRADED}
    for (student, assignment), reason in flags(parallel).items():
        if student in BROKEN:
            own = of_submission(recorded, student, assignment)
            assert findings.reason(messages.as_findings(own)) == reason


def of_submission(frame, student, assignment, notebook=None):
    """The rows of a table of coursetools.messages that are of one submission (or one of its notebooks)."""
    own = (frame["student"] == student) & (frame["assignment"] == assignment)
    return frame[own & (frame["notebook"] == notebook) if notebook else own]


def test_grades_csv_is_what_nbgrader_export_writes(graded, tmp_path):
    """course grade exports in its own process, with nbgrader's export plugin: the same file."""
    parallel, _, _ = graded
    nbgrader(parallel, "export", f"--to={tmp_path / 'grades.csv'}")
    assert (tmp_path / "grades.csv").read_bytes() == (parallel / "grades.csv").read_bytes()


def test_report_answers_a_tas_questions(graded):
    parallel, _, _ = graded
    page = (parallel / "class_report.html").read_text()
    for student in BROKEN:
        assert student in page
    for table in ("flagged", "lowest", "hardest", "questions", "manual", "students"):
        assert f'id="{table}"' in page
    assert 'id="distribution"' in page and 'id="heat-map"' in page
    with open(parallel / "class_report.csv") as file:
        cells = list(csv.DictReader(file))
    # only linear_network: the students who handed in logistic_network are examples, which do not count
    assert {row["assignment"] for row in cells} == {"linear_network"}
    assert {row["cell"] for row in cells} >= {"add_bias_columns", "feedforward_hidden"}
    # a notebook that could not be graded is counted apart from the pass rate, never as a failure
    handed_in = len(BROKEN) + len(REPAIRED)  # the examples do not count
    assert {int(row["submissions"]) + int(row["not_graded"]) for row in cells} == {handed_in}
    assert all(int(row["not_graded"]) > 0 for row in cells)
    assert not any(NOT_GRADED in row["most_common_failures"] for row in cells)
    rates = [float(row["pass_rate"]) for row in cells]
    assert rates == sorted(rates), "hardest questions first"


SCREENSHOT = ROOT / ".ci" / "artifacts" / "class_report.png"


def test_report_fits_a_1280_px_window_in_headless_chromium(graded, tmp_path):
    """The first screen shows the flagged and the lowest students and the hardest question; nothing
    scrolls sideways; every plot loads. The first screen is saved for the CI log."""
    from playwright.sync_api import sync_playwright

    parallel, _, _ = graded
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile",  # a fresh profile
            executable_path="/usr/bin/chromium",  # Debian's Chromium: no browser download
            headless=True,
            viewport={"width": 1280, "height": 800},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto((parallel / "class_report.html").as_uri())
        width = page.evaluate("document.documentElement.scrollWidth")
        plots = page.eval_on_selector_all("img", "imgs => imgs.map(img => img.complete && img.naturalWidth)")
        first_rows = {table: page.locator(f"#{table} tbody tr").first.bounding_box()
                      for table in ("flagged", "lowest", "hardest")}
        flagged = page.locator("#flagged tbody tr").all_inner_texts()
        questions = page.locator("#questions tbody tr").count()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        browser.close()
    print(f"class report screenshot: {SCREENSHOT}")
    assert width <= 1280, f"the page is {width} px wide: it scrolls sideways"
    assert len(plots) >= 2 and all(width and width > 100 for width in plots), plots
    for table, box in first_rows.items():
        assert box and box["y"] + box["height"] <= 800, f"#{table} is not in the first screen: {box}"
    assert any("broken-json" in row and "not a readable notebook" in row for row in flagged)
    assert questions >= 8  # every test cell of linear_network


def test_a_job_carries_the_assignment_not_the_class(graded, tmp_path):
    """What a worker gets of the gradebook (also over the network, with Dask): the assignment's definition,
    as the course's gradebook holds it, and no student and no grade; so a job does not grow with the class."""
    parallel, _, _ = graded
    [job] = make_jobs(parallel, [("linear_network", "example-correct")])
    assert set(job.course) == {JOB_GRADEBOOK, "nbgrader_config.py", "source/linear_network/checks.py",
                               "source/linear_network/linear_network.ipynb"}
    path = tmp_path / JOB_GRADEBOOK
    path.write_bytes(job.course[JOB_GRADEBOOK])

    def definition(gradebook):
        return [(notebook.name, notebook.kernelspec,
                 sorted((cell.name, cell.max_score, cell.cell_type) for cell in notebook.grade_cells),
                 sorted((cell.name, cell.max_score, cell.cell_type) for cell in notebook.task_cells),
                 sorted(cell.name for cell in notebook.solution_cells),
                 sorted((cell.name, cell.cell_type, cell.locked, cell.source, cell.checksum)
                        for cell in notebook.source_cells))
                for notebook in gradebook.find_assignment("linear_network").notebooks]

    with Gradebook(f"sqlite:///{path}") as job_gradebook, Gradebook(gradebook_url(parallel)) as course:
        assert len(course.students) > 10 and course.find_assignment("linear_network").submissions
        assert job_gradebook.students == []
        assert job_gradebook.find_assignment("linear_network").submissions == []
        assert definition(job_gradebook) == definition(course) and definition(course)[0][2]
        versions = [gradebook.db.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
                    for gradebook in (job_gradebook, course)]
        assert versions[0] == versions[1]  # nbgrader's schema, as the course's gradebook has it


def test_dask_cluster_grades_like_serial_nbgrader(graded, course_template, tmp_path):
    from dask.distributed import LocalCluster

    _, serial, _ = graded
    root = new_course(course_template, tmp_path / "dask", ["linear_network"], NOTEBOOK_TIME_LIMIT)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run = course_command(root, "grade", "linear_network", "--student", "example-[cm]*",
                             "--dask-scheduler", cluster.scheduler_address, "--quiet")
    assert run.returncode == 0 and "graded 2 submissions" in run.stdout, run.stdout + run.stderr
    students = ["example-correct", "example-mistakes"]
    assert grades(root, students, ["linear_network"]) == grades(serial, students, ["linear_network"])


# answers whose feedforward cell runs past the cell time limit, with the code put before the answer
RUNAWAY = {
    "python-loop": "while True:\n    pass",  # answers the interrupt: the cell fails, grading goes on
    "ignores-interrupt": "import signal\nimport time\n\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                         "time.sleep(10**6)",
    "c-call": "sum(range(10**12))",  # one long C call: no signal is handled before it returns
}
CELL_TIME_LIMIT = 8  # seconds; linear_network's cells take well under one
RUNAWAY_NOTEBOOK_LIMIT = 45  # seconds: past-notebook-limit sleeps 7 × 7 s before its feedforward answer
BEFORE_FEEDFORWARD = ["add_bias_columns", "add_bias_input_unchanged", "add_bias_hidden", "train_lesson",
                      "train_hidden"]


@pytest.fixture(scope="module")
def runaway(tmp_path_factory, course_template):
    """The RUNAWAY submissions graded by `course grade` and by a plain, serial `nbgrader autograde`."""
    roots = []
    for way in ("parallel", "serial"):
        root = new_course(course_template, tmp_path_factory.mktemp(f"runaway-{way}"), [],
                          RUNAWAY_NOTEBOOK_LIMIT, cell_time_limit=CELL_TIME_LIMIT)
        solution = nbformat.read(notebook_path(root, "solutions", "linear_network"), as_version=4)
        for student, code in RUNAWAY.items():
            submit(root, "linear_network", student, with_answer_prefix(solution, "feedforward", code))
        sleepy = nbformat.from_dict(json.loads(json.dumps(solution)))
        at = next(i for i, cell in enumerate(sleepy.cells) if grade_id(cell) == "feedforward")
        sleepy.cells[at:at] = [nbformat.v4.new_code_cell("import time\n\ntime.sleep(7)") for _ in range(7)]
        submit(root, "linear_network", "past-notebook-limit", sleepy)
        roots.append(root)
    run = course_command(roots[0], "grade", "linear_network", "--student", "*", "--workers", "2", "--quiet")
    nbgrader(roots[1], "autograde", "linear_network", "--force")
    return roots, run


@pytest.mark.parametrize("student", [*sorted(RUNAWAY), "past-notebook-limit"])
def test_a_cell_past_its_time_limit_keeps_the_points_of_the_cells_before_it(runaway, student):
    """Both ways of grading alike: the tests before the runaway cell keep their points, it and the tests
    after it score zero; a cell that ignores the interrupt stops the kernel and says so, by cell and limit."""
    (parallel, serial), run = runaway
    ours, theirs = (automatic_scores(root, student) for root in (parallel, serial))
    assert ours == theirs
    assert {cell for cell, score in ours.items() if score and cell != "flagged"} == set(BEFORE_FEEDFORWARD)
    reason = flags(parallel).get((student, "linear_network"), "")
    if student == "python-loop":
        assert not reason  # interrupted: an ordinary failure of the student's own cell
        assert "CellTimeoutError" in feedback_text(parallel, student)
    elif student == "past-notebook-limit":
        assert f"ran past the notebook time limit ({RUNAWAY_NOTEBOOK_LIMIT} s): kernel stopped" in reason
        assert ours["flagged"] is True and theirs["flagged"] is True
    else:
        stopped = f"cell feedforward ran past the {CELL_TIME_LIMIT} s limit and ignored the interrupt"
        assert f"{stopped}: kernel stopped" in reason
        assert ours["flagged"] is True and theirs["flagged"] is True
        assert "could not be interrupted" in feedback_text(parallel, student)


@pytest.mark.parametrize("student", ["example-mistakes", "dies"])
def test_a_single_submission_graded_in_the_coordinator_is_graded_as_in_a_worker(graded, tmp_path, student):
    """`course grade --student NAME` of one submission grades it without worker processes
    (batch.grade_in_process): the same points, comments, flag, findings and notebook as the class's run."""
    course = tmp_path / "course"
    shutil.copytree(graded[0], course, symlinks=True)
    run = course_command(course, "grade", "linear_network", "--student", student, "--quiet")
    flagged = flags(graded[0]).get((student, "linear_network"))
    assert run.returncode == (1 if flagged else 0) and "graded 1 submission;" in run.stdout, run.stdout
    assert grades(course, [student], ASSIGNMENTS) == grades(graded[0], [student], ASSIGNMENTS)
    assert flags(course).get((student, "linear_network")) == flagged
    assert autograded_cells(course, student, "linear_network") == autograded_cells(graded[0], student,
                                                                                    "linear_network")


def test_a_grading_that_fails_in_the_coordinator_is_a_finding(monkeypatch):
    """As a worker that fails: the submission is reported, the run goes on."""
    from coursetools import batch

    def broken(job):
        raise RuntimeError("nbgrader broke")

    monkeypatch.setattr(batch, "grade_one", broken)
    jobs = [batch.Job("linear_network", student, {}, {}) for student in ("a", "b")]
    results = list(batch.grade_in_process(jobs))
    assert [(result.student, [finding.kind for finding in result.findings]) for result in results] == [
        ("a", ["worker-failed"]), ("b", ["worker-failed"])]
    assert "nbgrader broke" in results[0].findings[0].detail and results[0].reason


def test_failed_regrade_leaves_no_old_scores(graded):
    """Runs last: it changes the parallel course."""
    parallel, _, _ = graded
    assert grades(parallel, ["example-correct"], ["linear_network"])[
        ("example-correct", "linear_network", "add_bias_columns")][0] == 1
    notebook_path(parallel, "submitted", "linear_network", "example-correct").write_text("not a notebook")
    run = course_command(parallel, "grade", "linear_network", "--student", "example-correct", "--quiet")
    assert run.returncode == 1 and "graded 1 submission;" in run.stdout, run.stdout
    after = grades(parallel, ["example-correct"], ["linear_network"])
    auto = [value[0] for (_, _, cell), value in after.items() if cell != "flagged" and value[0] is not None]
    assert auto and all(score == 0 for score in auto)
    assert after[("example-correct", "linear_network", "flagged")] is True


def test_both_grading_paths_take_the_same_files_and_say_the_same(tmp_path):
    """What `course grade` reads of a submission is what the pre-convert hook of `nbgrader autograde`
    leaves in it, with the same findings: links and a pipe left out, a notebook that is a link and one
    beyond the limits graded as the release, a file beyond the limits left out."""
    release = tmp_path / "release"
    release.mkdir()
    for name in ("a.ipynb", "b.ipynb"):
        (release / name).write_text(f"release {name}")
    course_files = {"checks.py": b"the course's", "a.ipynb": b"source"}
    limits = SubmissionLimits(max_bytes=1000, max_files=10)
    folders = {way: tmp_path / "submitted" / way / "assignment" for way in ("grade", "autograde")}
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "a.ipynb").symlink_to(release / "a.ipynb")
        (folder / "b.ipynb").write_text("x" * 2000)
        (folder / "data.csv").symlink_to("/etc/passwd")
        os.mkfifo(folder / "pipe")
        (folder / "checks.py").write_text("the student's")
        (folder / "notes.txt").write_text("kept")
        (folder / "big.bin").write_bytes(b"0" * 2000)
    releases = {path.name: path for path in release.glob("*.ipynb")}
    files, taken = intake.read_submission(folders["grade"], releases, limits)
    read = taken.findings() + intake.own_course_files(files, course_files)
    moved = intake.quarantine_submission(folders["autograde"], releases, limits, course_files, tmp_path,
                                         "autograde", "assignment")
    left, _ = read_tree(folders["autograde"])
    assert files == left
    assert files["a.ipynb"] == b"release a.ipynb" and files["b.ipynb"] == b"release b.ipynb"
    assert sorted(files) == ["a.ipynb", "b.ipynb", "checks.py", "notes.txt"]
    assert [f.kind for f in read] == [f.kind for f in moved] == ["link", "link", "link", "link", "too-big",
                                                                  "own-checks"]
    # the same words, but where the files went
    assert [f.detail for f in read] == [f.detail.replace(": moved to quarantine/", ": left out")
                                        for f in moved]
    assert "a.ipynb was a link: moved to quarantine/, graded as the release" in moved[3].detail
    kept = next((tmp_path / "quarantine" / "autograde" / "assignment").iterdir())
    assert sorted(path.name for path in kept.iterdir()) == ["a.ipynb", "b.ipynb", "big.bin", "data.csv",
                                                             "pipe"]


def test_results_that_came_back_are_in_the_gradebook_when_the_run_is_stopped(graded, tmp_path, monkeypatch):
    """Grades wait to be written with others (coursetools.record); a run stopped by Ctrl-C after two
    results came back still writes both, with the points they had."""
    from coursetools import batch
    from coursetools.grading import kernel

    course = tmp_path / "course"
    shutil.copytree(graded[0], course, symlinks=True)
    students = ["example-correct", "example-mistakes"]
    before = {student: automatic_scores(course, student) for student in students}
    results = []
    with Gradebook(gradebook_url(course)) as gradebook:
        for student in students:
            gradebook.remove_submission("linear_network", student)
            files = {kind: read_tree(course / kind / student / "linear_network")[0]
                     for kind in ("autograded", "feedback")}
            results.append(batch.Result("linear_network", student, files["autograded"], files["feedback"]))

    def stopped_run(jobs, workers, scheduler=None):
        yield from results
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "run_jobs", stopped_run)
    monkeypatch.setattr(kernel, "start_shared_template", lambda config: None)
    with pytest.raises(KeyboardInterrupt):
        batch.grade_class(course, ASSIGNMENTS, ASSIGNMENTS, students="example-*", scheduler="none",
                          quiet=True)
    assert {student: automatic_scores(course, student) for student in students} == before
