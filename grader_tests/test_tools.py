"""Parts of the grading tools, tried without grading: what is found under submitted/, what a student's
feedback may show, how findings travel, how hidden tests come back quietly. Fast: no kernel starts."""

import os
import shutil
import subprocess

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import ASSIGNMENTS, ROOT

from coursetools import batch, findings, messages, report, scores
from coursetools.findings import Finding
from coursetools.grading import intake
from coursetools.grading.feedback import FeedbackForStudents, without_grader_paths
from coursetools.grading.release import ClearHiddenTestsQuietly, published_sources


def hand_in(root, path, text="{}"):
    target = root / "submitted" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_survey_finds_submissions_and_reports_what_cannot_be_graded(tmp_path):
    hand_in(tmp_path, "ann/activations/activations.ipynb")
    hand_in(tmp_path, "ann/linear_network/linear_network.ipynb")
    hand_in(tmp_path, "bob/activatons/activations.ipynb")
    hand_in(tmp_path, "cy/activations.ipynb")
    hand_in(tmp_path, "stray.ipynb")
    found, strays = batch.survey(tmp_path, ["activations"], ASSIGNMENTS)
    assert found == [("activations", "ann")]  # linear_network is known, but not chosen: not reported
    reasons = {(r.student, r.assignment): r.reason for r in strays}
    assert set(reasons) == {("bob", "activatons"), ("cy", "activations.ipynb"), ("", "stray.ipynb")}
    assert "(did you mean activations?)" in reasons[("bob", "activatons")]
    assert "expected submitted/cy/activations/activations.ipynb" in reasons[("cy", "activations.ipynb")]
    assert all(not r.graded for r in strays)
    only_ann, _ = batch.survey(tmp_path, ASSIGNMENTS, ASSIGNMENTS, students="a*")
    assert only_ann == [("activations", "ann"), ("linear_network", "ann")]


def test_example_students_are_graded_only_when_asked_for(tmp_path):
    for student in ("ann", "example-correct", "example-mistakes"):
        hand_in(tmp_path, f"{student}/activations/activations.ipynb")
    every_run, _ = batch.survey(tmp_path, ["activations"], ASSIGNMENTS)
    assert every_run == [("activations", "ann")]
    asked, _ = batch.survey(tmp_path, ["activations"], ASSIGNMENTS, students="example-*")
    assert asked == [("activations", "example-correct"), ("activations", "example-mistakes")]
    everyone, _ = batch.survey(tmp_path, ["activations"], ASSIGNMENTS, students="*")
    assert [student for _, student in everyone] == ["ann", "example-correct", "example-mistakes"]


def test_pass_rates_count_only_the_tests_that_ran():
    """Two submissions could not be graded: they are counted apart, and the common failure is the real
    one of the graded students, not "not graded"."""
    rows = [("ann", 1.0, ""), ("bob", 1.0, ""), ("cy", 0.0, "AssertionError: relu(-1) should be 0"),
            ("dan", 0.0, messages.NOT_GRADED), ("eve", 0.0, messages.NOT_GRADED)]
    grades = pd.DataFrame([("activations", student, "activations", "relu_values", "code", score, 1.0, False,
                            message == messages.NOT_GRADED, message) for student, score, message in rows],
                          columns=[*scores.GRADE_COLUMNS, "message"])
    data = report.ClassData(grades, pd.DataFrame(), pd.DataFrame(), examples_only=False)
    row = report.question_table(data).iloc[0]
    assert (row["submissions"], row["passed"], row["not_graded"]) == (3, 2, 2)
    assert row["pass_rate"] == round(2 / 3, 3)
    assert row["failures"] == [("AssertionError: relu(-1) should be 0", 1)]
    nobody = grades.assign(message=messages.NOT_GRADED, score=0.0)
    row = report.question_table(report.ClassData(nobody, pd.DataFrame(), pd.DataFrame(), False)).iloc[0]
    assert (row["submissions"], row["not_graded"], row["failures"]) == (0, 5, [])
    assert np.isnan(row["pass_rate"])


def test_a_renamed_or_broken_notebook_is_named_with_what_was_found():
    renamed = intake.notebook_findings(["activations"], {"activations-Copy1.ipynb": b"{}"})
    assert [f.kind for f in renamed] == ["missing-notebook"]
    assert "found activations-Copy1.ipynb; expected activations.ipynb" in renamed[0].detail
    assert "named activations.ipynb" in renamed[0].student
    broken = intake.notebook_findings(["activations"], {"activations.ipynb": b"\xff not json"})
    assert [f.kind for f in broken] == ["unreadable-notebook"] and broken[0].student


def test_findings_travel_in_the_notebook_and_split_into_ta_reason_and_notes():
    notebook = nbformat.v4.new_notebook()
    flag = Finding("time-limit", "ran too long", student="Your notebook ran too long.")
    note = Finding("edited-cell", "edited a test", needs_ta=False)
    for finding in (flag, note, flag):
        findings.add(notebook, finding)
    read = findings.read(nbformat.reads(nbformat.writes(notebook), as_version=4))
    assert read == [flag, note]
    assert findings.reason(read) == "ran too long" and findings.notes(read) == "edited a test"
    findings.clear(notebook)
    assert findings.read(notebook) == []


@pytest.mark.parametrize(("text", "shown"), [
    ("File /dev/shm/grade-x1y2/autograded/ann/linear_network/checks.py:52, in call",
     "File checks.py:52, in call"),
    ("File /srv/course/autograded/a b/linear_network/checks.py:52", "File checks.py:52"),
    ("/work/course/.venv/lib/python3.11/site-packages/sklearn/base.py:9: ConvergenceWarning",
     "sklearn/base.py:9: ConvergenceWarning"),
    ("/usr/lib/python3.11/warnings.py", "warnings.py"),
    ("a ratio of 3/4 stays", "a ratio of 3/4 stays"),
])
def test_feedback_cuts_the_grading_machines_paths(text, shown):
    assert without_grader_paths(text) == shown


def test_feedback_shows_the_students_notes_and_hides_ta_notes_and_hidden_tests():
    test = nbformat.v4.new_code_cell('"""checks"""\n### BEGIN HIDDEN TESTS\nassert secret_reference(1) == 2\n'
                                     '### END HIDDEN TESTS',
                                     metadata={"nbgrader": {"grade": True, "grade_id": "t", "points": 1}})
    message = "f(1) returned 3; expected 2"
    test.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue=message,
                                           traceback=[f"AssertionError: {message}"])]
    answer = nbformat.v4.new_markdown_cell("why", metadata={"nbgrader": {
        "grade": True, "solution": True, "grade_id": "q", "comment": findings.TA_NOTE_PREFIX + "tampering"}})
    notebook = nbformat.v4.new_notebook(cells=[test, answer])
    findings.add(notebook, Finding("time-limit", "ran past the limit", student="Your notebook ran too long."))
    findings.add(notebook, Finding("tampering", "tags of test cells changed"))
    shown, _ = FeedbackForStudents().preprocess(notebook, {})
    text = nbformat.writes(shown)
    assert "Your notebook ran too long." in shown.cells[0].source
    assert "tags of test cells changed" not in text and "ran past the limit" not in text
    assert "tampering" not in text
    assert "secret_reference" not in text and "f(1) returned 3; expected 2" in text


def test_hidden_tests_come_back_quietly_whatever_form_a_student_received():
    source = '"""checks"""\n### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS'
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {"grade": True, "grade_id": "t"}})
    ClearHiddenTestsQuietly().preprocess_cell(cell, {}, 0)
    assert cell.source.startswith('"""checks"""\npass  #')  # the release's cell displays nothing
    assert cell.source.strip() in published_sources(source)
    assert '"""checks"""' in published_sources(source)  # the published solution's form
    assert '"""checks"""\nassert f(1) == 3' not in published_sources(source)


def test_make_demo_without_bubblewrap_and_without_root_stops_at_once_with_the_command_to_run(tmp_path):
    """On a machine without bubblewrap, run by a user who cannot install it, the README's main command
    prints one line that gives the exact command to run, and does nothing else."""
    for name in ("Makefile", "pyproject.toml", "requirements.lock", "requirements-test.lock", "scripts"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "installed").touch()  # the environment is there, newer than the locks
    tools = tmp_path / "bin"  # what the machine has: no bwrap
    tools.mkdir()
    for tool in ("sh", "apt-get"):
        if shutil.which(tool):
            (tools / tool).symlink_to(shutil.which(tool))
    (tools / "id").write_text("#!/bin/sh\necho 1000\n")  # not root
    (tools / "id").chmod(0o755)
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("MAKE", "MFLAGS"))}  # as typed in a shell, not under another make
    done = subprocess.run([shutil.which("make"), "demo"], cwd=tmp_path, capture_output=True, text=True,
                          env={**environment, "PATH": str(tools)}, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1, lines
    assert "missing system packages: bubblewrap; install them with: sudo apt-get update && sudo apt-get " \
           "install -y bubblewrap" in lines[0]


def test_plain_data_crosses_and_nothing_else():
    """The judge's channel: numbers, arrays, frames and series (labels and dtypes kept), lists, tuples and
    dicts of them; an object that fakes its comparisons, or an array of objects, is refused."""
    import numpy as np
    import pandas as pd

    from coursetools.student import wire

    frame = pd.DataFrame(np.arange(6.0).reshape(3, 2), index=[30, 10, 20]).assign(bias=1)
    values = [None, True, 3, 2.5, "x", np.float64(0.5), np.arange(4), frame, pd.Series([1, 2], name="y"),
              [1, (2.0, np.int32(3))], {(64,): 0.5, "mlp": 0.9}]
    for value in values:
        back = wire.loads(wire.dumps(value))
        assert type(back) is type(value)
        if isinstance(value, pd.DataFrame):
            assert back.equals(value) and list(back.columns) == list(value.columns)
            assert back.index.equals(value.index)
        elif isinstance(value, (pd.Series, np.ndarray)):
            assert np.array_equal(back, value) and back.dtype == value.dtype
        else:
            assert back == value

    class Agreeable(float):
        def __eq__(self, other):
            return True

    for refused in (Agreeable(1.0), np.array([object()]), pd.DataFrame({"a": ["text"]}), object()):
        with pytest.raises(wire.NotData):
            wire.dumps(refused)
    with pytest.raises(ValueError):
        wire.loads('{"$array": "not npy"}')


BUDGET = 64 * 2**20  # JudgedExecute.answer_limit's default: the budget of one answer


def _header_only(rows):
    """An .npy text that declares `rows` float64 values and holds none: what a bomb needs to be small."""
    import base64
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (rows,)})
    return base64.b64encode(buffer.getvalue()).decode()


def bombs(times):
    """Answers of a few hundred bytes (lists: a few MB) that would decode to `times` the budget."""
    import numpy as np

    from coursetools.student import wire

    rows = times * BUDGET // 8
    one = {"numpy": wire._npy(np.array(1.0))}  # a 0-d value, which pandas would broadcast to every row
    index = {"range": [0, rows, 1], "name": None}
    column = {"numpy": _header_only(rows)}
    return {
        "series broadcast": {"$series": {"values": one, "index": index, "name": None}},
        "frame broadcast": {"$frame": {"columns": {"range": [0, 3, 1], "name": None}, "data": [one] * 3,
                                       "index": index}},
        "index": {"$series": {"values": column, "index": {"numbers": _header_only(rows), "name": None},
                              "name": None}},
        "array in a list": [1, [{"$array": _header_only(rows)}]],
        "array in a dict": {"$dict": [["key", {"$tuple": [{"$array": _header_only(rows)}]}]]},
        "labels": {"$series": {"values": column, "index": {"labels": [0] * 3, "name": None}, "name": None}},
    }


@pytest.mark.parametrize("times", [10, 1000])
def test_an_answer_is_measured_before_it_is_decoded(times):
    """Each bomb fails fast with its size, and builds nothing (the measure reads headers and lengths)."""
    import json
    import time

    from coursetools.student import wire

    for kind, data in bombs(times).items():
        text = json.dumps(data)
        started = time.perf_counter()
        with pytest.raises(ValueError) as refused:
            wire.loads(text, BUDGET)
        assert time.perf_counter() - started < 1, kind
        if kind != "labels":  # three labels beside millions of values: refused for its shape
            assert isinstance(refused.value, wire.TooLarge), (kind, refused.value)
            assert str(refused.value).startswith("answered a value of ") and "; at most 64 MB" in str(
                refused.value), str(refused.value)


def test_lists_and_dicts_are_bounded_before_json_reads_them():
    """A text of many small lists or dicts (json.loads would make ten times the budget of Python objects)
    is refused by a count of its brackets and commas."""
    import time

    from coursetools.student import wire

    for text in ("[" + "[]," * (BUDGET // 6) + "[]]", "[" + '{"$dict":[]},' * (BUDGET // 16) + "0]"):
        started = time.perf_counter()
        with pytest.raises(wire.TooLarge):
            wire.parse(text, BUDGET)
        assert time.perf_counter() - started < 1
    assert wire.parse("[[1, 2], [3, 4]]", BUDGET) == [[1, 2], [3, 4]]


def test_values_and_index_of_other_lengths_are_refused_not_broadcast():
    import json

    import numpy as np
    import pandas as pd

    from coursetools.student import wire

    series = json.loads(wire.dumps(pd.Series([1.0, 2.0, 3.0])))
    series["$series"]["index"] = {"range": [0, 5, 1], "name": None}
    frame = json.loads(wire.dumps(pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0]})))  # column by column
    frame["$frame"]["data"] = frame["$frame"]["data"][:1]
    block = json.loads(wire.dumps(pd.DataFrame({"a": [1, 2], "b": [3, 4]})))  # one dtype: one block
    block["$frame"]["index"] = {"range": [0, 5, 1], "name": None}
    scalar = {"$scalar": wire._npy(np.zeros(4))}
    for data in (series, frame, block, scalar):
        with pytest.raises(ValueError):
            wire.loads(json.dumps(data))
    honest = pd.DataFrame(np.arange(6.0).reshape(3, 2), columns=["x", 0], index=[5, 1, 9])
    assert wire.loads(wire.dumps(honest)).equals(honest)


def test_reference_results_are_remembered_for_the_same_code_and_inputs():
    import numpy as np

    from coursetools.grading import references

    runs = []

    def reference(features, scale=1):
        runs.append(1)
        return np.asarray(features) * scale

    for features in ([1, 2], [1, 2], [3]):
        result = references.remember(reference, (features,), {})
        result[0] = -1  # a test that changes a result does not change what is remembered
    assert len(runs) == 2
    assert list(references.remember(reference, ([1, 2],), {})) == [1, 2] and len(runs) == 2
    from sklearn.neighbors import KNeighborsClassifier

    made = []

    def fitted(model):
        made.append(1)
        return model.get_params()["n_neighbors"]

    for _ in range(2):  # a new unfitted model of the same class and parameters: the same input
        assert references.remember(fitted, (KNeighborsClassifier(n_neighbors=3),), {}) == 3
    assert references.remember(fitted, (KNeighborsClassifier(n_neighbors=4),), {}) == 4
    assert len(made) == 2


def test_workers_of_a_grading_run_share_reference_results(tmp_path, monkeypatch):
    """What one worker computed, another reads from the run's folder instead of computing it again."""
    import numpy as np

    from coursetools.grading import references

    monkeypatch.setenv(references.REFERENCES_VARIABLE, str(tmp_path))
    runs = []

    def reference(features):
        runs.append(1)
        return np.asarray(features) * 2.0

    first = references.remember(reference, ([1, 2, 7],), {})
    assert len(list(tmp_path.iterdir())) == 1
    references._references.clear()  # another worker: nothing in its memory
    second = references.remember(reference, ([1, 2, 7],), {})
    assert len(runs) == 1 and np.array_equal(first, second) and second.dtype == np.float64
    monkeypatch.delenv(references.REFERENCES_VARIABLE)
    references._references.clear()  # without the folder, each process computes its own
    references.remember(reference, ([1, 2, 7],), {})
    assert len(runs) == 2


def test_fast_csv_export_writes_what_nbgrader_export_writes(tmp_path):
    """On a gradebook with what nbgrader's export must handle (a due date, students without a submission or
    without names, timestamps, late penalties, two assignments), CsvExport writes nbgrader's file, byte for
    byte, and nbgrader's own plugin is what `nbgrader export` runs."""
    from datetime import datetime

    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    from coursetools.course import put_environment_on_path, silence_known_warnings
    from coursetools.scores import CsvExport

    put_environment_on_path()  # a new gradebook runs nbgrader's alembic migrations
    silence_known_warnings()
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        for name, due in (("first", datetime(2026, 11, 1, 12)), ("second", None)):
            gradebook.add_assignment(name, duedate=due)
            gradebook.add_notebook("nb", name)
            gradebook.add_grade_cell("a", "nb", name, max_score=2, cell_type="code")
            gradebook.add_grade_cell("b", "nb", name, max_score=1.5, cell_type="markdown")
        for number in range(40):
            names = {"last_name": f"L{number % 3}", "first_name": "F", "email": "e@x"} if number % 4 else {}
            gradebook.add_student(f"s{number:02d}", **names)
            if number % 5 == 0:
                continue  # handed in nothing
            submission = gradebook.add_submission("first", f"s{number:02d}",
                                                  timestamp=datetime(2026, 11, 1, 10 + number % 5, 30))
            for notebook in submission.notebooks:
                notebook.late_submission_penalty = 0.5 if number % 3 == 0 else None
                for grade in notebook.grades:
                    grade.auto_score = (number % 3) * 0.5
                    grade.manual_score = 1.25 if number % 7 == 0 else None
            gradebook.db.commit()
        exported = {}
        for plugin_class in (CsvExportPlugin, CsvExport):
            plugin = plugin_class(to=str(tmp_path / f"{plugin_class.__name__}.csv"))
            plugin.export(gradebook)
            exported[plugin_class] = (tmp_path / f"{plugin_class.__name__}.csv").read_text()
        plugin = CsvExport(to=str(tmp_path / "some.csv"), student=["s01", "s05"], assignment=["first"])
        plugin.export(gradebook)
    assert exported[CsvExport] == exported[CsvExportPlugin]
    rows = exported[CsvExport].splitlines()
    assert len(rows) == 81
    assert "first,2026-11-01 12:00:00,2026-11-01 11:30:00,s01,L1,F,e@x," in exported[CsvExport]
    assert ",0.5," in exported[CsvExport]
    assert len((tmp_path / "some.csv").read_text().splitlines()) == 3


JUDGE_UNDER_A_BOUND = """
import resource, sys
import nbformat
import numpy as np
import pandas as pd
from coursetools.grading import autograde, judge

def cell(grade_id, source):
    made = nbformat.v4.new_code_cell(source)
    made.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": 1,
                                 "solution": False, "schema_version": 3, "task": False}
    return made

notebook = nbformat.v4.new_notebook(cells=[
    cell("greedy", "import numpy as np\\nheld = np.ones(3 * 2**30 // 8)"),
    cell("later", "assert True")])
autograde.bound_judge_process(int(sys.argv[1]))
grader = judge.Judge(notebook, sys.argv[2])
for name in ("greedy", "later"):
    print(name, [(o.get("ename"), o.get("evalue")) for o in grader.run_test_cell(name)])
print("out of memory:", grader.out_of_memory, "; limit:", resource.getrlimit(resource.RLIMIT_DATA)[0])
"""


def test_the_judge_meets_its_memory_bound_with_a_memory_error_and_judges_no_further(tmp_path):
    """Under its data bound, a test that needs more memory fails with a MemoryError, the tests after it are
    not judged (the notebook is flagged: JudgedExecute reads out_of_memory), and the process lives on."""
    import sys

    checks = ROOT / "coursetools" / "student" / "checks.py"
    bound = 1024 * 2**20
    done = subprocess.run([sys.executable, "-c", JUDGE_UNDER_A_BOUND, str(bound), str(checks)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    greedy, later, summary = done.stdout.splitlines()[-3:]
    assert "MemoryError" in greedy and "the grader ran out of memory in this test" in greedy, greedy
    assert "MemoryError" in later and "not judged" in later, later
    assert summary == f"out of memory: True ; limit: {bound}", summary


def test_references_of_each_students_inputs_are_computed_per_student_and_the_shared_ones_once(monkeypatch):
    """With hidden inputs of each student's own, a reference on those inputs runs for each student; a
    reference on inputs that are the same for everyone still runs once for the class."""
    import numpy as np

    from coursetools.grading import judge, references
    from coursetools.student import checks

    monkeypatch.delenv(references.REFERENCES_VARIABLE, raising=False)
    references._references.clear()
    runs = []

    @checks.reference
    def reference(features):
        runs.append(np.asarray(features).shape)
        return np.asarray(features) * 2.0

    monkeypatch.setattr(checks, "remember", references.remember)
    for student in ("ann", "bob", "cy"):
        monkeypatch.setattr(checks, "seed", judge.hidden_seed("course", "activations", student))
        reference(checks.inputs_rng(3).normal(size=(4, 2)))  # the student's own inputs
        reference(np.linspace(-1, 1, 5))  # the same for everyone
    assert runs.count((4, 2)) == 3 and runs.count((5,)) == 1
    references._references.clear()


def imported_by(*modules):
    """The modules that a fresh interpreter holds once it imported `modules`."""
    import sys

    code = f"import sys, {', '.join(modules)}; print(' '.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.split())


def test_the_course_command_imports_what_only_some_commands_need_when_they_run():
    """The command's module imports neither nbgrader nor the report's libraries (each command imports what
    it needs), and the constants it repeats for its help agree with their modules. The modules that `course
    grade`'s coordinator imports to grade import neither copydetect (and matplotlib with it) nor, for the
    gradebook's tables, pandas: similarity and the report import them when they run."""
    from coursetools import check, cli, lms

    assert (cli.TIMEOUT, cli.COURSE_FILE) == (check.TIMEOUT, lms.COURSE_FILE)
    assert not {"nbgrader", "nbformat", "matplotlib", "pandas", "sqlalchemy"} & imported_by("coursetools.cli")
    assert not {"copydetect", "matplotlib"} & imported_by("coursetools.batch", "coursetools.similarity")
    assert not {"copydetect", "matplotlib", "pandas"} & imported_by(
        "coursetools.lms", "coursetools.record", "coursetools.messages", "coursetools.scores",
        "coursetools.similarity")
