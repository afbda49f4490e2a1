"""What makes an autograde rest on trusted code: nbgrader preprocessors and a hook (nbgrader_config.py
installs them, so `nbgrader autograde` and `course grade` both use them).

nbgrader judges a test cell by its outputs alone: a test cell without an error output earns its points.
So a test cell that never ran (a `skip-execution` tag, a kernel that died) would earn them, and so would
one whose error the student's code hid (a custom exception handler, an input transformer, patched numpy
or test helpers). Here a test cell keeps its points only if it ran to its end untampered:
- RestoreInstructorCells is nbgrader's OverwriteCells (graded and read-only cells get the instructor's
  source back) that also gives every cell of the instructor's notebook its metadata back (tags included),
  so a tag a student added to a test cell has no effect, and tells the restoring of hidden tests (silent)
  from a student's edit of a test (reported once, in words);
- GradingExecute runs the notebook (in the sandboxed kernel, see coursetools.kernel) and
  - after each test cell runs a canary: known-wrong checks that must fail, ending in an error with a
    secret made for this run. A canary that shows no error, another error or a check that passed means
    that the student's code changed how tests are judged: that test cell and every later one score
    zero. A test cell whose canary did not run (the kernel died in it) scores zero;
  - scans the student's code for what no notebook of this course needs; code that can change how
    tests are judged also gives zero to every later test cell, for a TA to decide (no in-kernel check
    can rule such code out);
  - cuts output beyond `output_limit` characters per cell (a flood would fill the grader's memory);
  and records what it found in the notebook's metadata (coursetools.findings), flags the submission
  in the gradebook when a finding needs a TA, and logs it. Zeroed cells keep their outputs, after a
  "NotGraded" error that says why, for the TA.
- refuse_links (nbgrader's pre-convert hook) moves links and special files out of a submission before
  nbgrader copies it, so nbgrader, running as root, never follows a link that a student made.
"""

import os
import re
import secrets
import stat
import time
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, OverwriteCells
from traitlets import Integer

from coursetools import findings, kernel
from coursetools.findings import Finding
from coursetools.release import published_sources

QUARANTINE = "quarantine"  # where refused links of submissions are kept, beside submitted/
_refused = {}  # (student, assignment) -> [Finding] of the links the pre-convert hook moved

# Student code that a notebook of this course never needs: (pattern, what it suggests, whether it can
# change how tests are judged). Matched in the cells a student can edit. Every match flags the submission
# for a TA; a match that can change how tests are judged also gives zero to every test cell after it
# (in-kernel checks cannot rule such code out; a TA can give the points back).
SUSPICIOUS_CODE = [
    (r"gradebook|\bsolutions?/|['\"/](source|release|autograded|submitted)['\"/]|\.\./|/etc/|/root\b",
     "reads course or system files", False),
    (r"\bos\.(walk|listdir|scandir|chdir)\b|\bglob\.", "explores the file system", False),
    (r"\bos\._exit\b|\bsys\.exit\b|\bSystemExit\b|^\s*(exit|quit)\(", "ends the kernel", False),
    (r"\bfork\(|subprocess|\bos\.(system|popen|exec\w*|spawn\w*|kill|setsid)\b|multiprocessing"
     r"|\bpty\b", "starts or signals processes", False),
    (r"\bsocket\b|urllib|requests\b|http\.client|ftplib|smtplib", "opens network connections", False),
    (r"\bthreading\b|_thread\b|\bThread\(", "starts threads", True),
    (r"\bctypes\b|\bcffi\b|\bmmap\b", "calls C code or maps memory", True),
    (r"(?<![\w.])(In|Out|_ih|_oh)\s*[\[)]|history_manager|\b_i{1,3}\b", "reads the notebook's history",
     True),
    (r"get_ipython|\bIPython\b|set_custom_exc|input_transformers|ast_transformers|events\.register",
     "changes how the notebook runs", True),
    (r"\b(exec|eval|compile|__import__|getattr|globals|locals|vars)\("
     r"|\b(base64|pickle|marshal|codecs|zlib)\b", "runs code built at run time", True),
    (r"\bsys\.(settrace|setprofile|addaudithook)|\bsignal\.", "traces or signals the interpreter", True),
    (r"sys\.modules|__builtins__|\bbuiltins\b|importlib|_getframe|\binspect\b|f_locals|f_back|__globals__"
     r"|\bsetattr\(|\bdelattr\(|\.__\w+__\s*=[^=]", "rewrites Python internals", True),
    (r"\b(np|numpy|pd|pandas|checks|sklearn)\.[\w.]+\s*=[^=]", "replaces a library function", True),
    (r"^\s*(def\s+(call|as_numbers|expect_\w+)\b|(call|as_numbers|expect_\w+)\s*=[^=])",
     "replaces a test helper", True),
    (r"__(eq|ne|array|array_ufunc|array_function|float|bool|len)__", "defines comparisons or conversions",
     True),
]
_SUSPICIOUS = [(re.compile(pattern, re.MULTILINE), what, tampers)
               for pattern, what, tampers in SUSPICIOUS_CODE]

# Known-wrong checks: with the notebook's own test helpers and numpy, each must raise AssertionError.
# The canary runs them through the global names the test cells use, so replacing those is seen too.
_CANARY = '''\
def _canary_{secret}():
    namespace = globals()
    import numpy
    import pandas
    np = namespace.get("np", numpy)
    frame = pandas.DataFrame({{"a": [1.0, 2.0]}})

    def numpy_isclose():
        assert np.all(np.isclose([1.0, 2.0], [1.0, 2.5]))

    def numpy_allclose():
        assert np.allclose([1.0], [2.0])

    def numpy_array_equal():
        assert np.array_equal([1, 2], [1, 3])

    def numpy_equality():
        assert (np.asarray([1.0, 2.0]) == np.asarray([1.0, 3.0])).all()

    def numpy_testing():
        np.testing.assert_allclose([1.0], [2.0])

    def plain_assert():
        assert 1 == 2

    def mutate(values):
        values[0] = 5

    def fails():
        raise ValueError("wrong")

    trials = [numpy_isclose, numpy_allclose, numpy_array_equal, numpy_equality, numpy_testing, plain_assert]
    helpers = {{
        "expect_close": ("canary", [1.0, 2.0], [1.0, 2.5]),
        "expect_equal": ("canary", [1, 2], [1, 3]),
        "expect_shape": ("canary", numpy.zeros(3), (4,)),
        "expect_type": ("canary", 1.0, str),
        "expect_columns": ("canary", frame, ["b"]),
        "expect_frame": ("canary", frame, frame + 1),
        "as_numbers": ("canary", object()),
        "expect_inputs_unchanged": (mutate, numpy.zeros(2)),
        "call": (fails,),
    }}
    for name, arguments in helpers.items():
        if name in namespace:
            trials.append(lambda helper=namespace[name], arguments=arguments: helper(*arguments))
    held = 0
    for trial in trials:
        try:
            trial()
        except AssertionError:
            held += 1
        except Exception:
            pass
    return "canary {secret}: %d of %d" % (held, len(trials))


raise AssertionError(globals().pop("_canary_{secret}")())
'''
_CANARY_ANSWER = re.compile(r"canary (?P<secret>\w+): (?P<held>\d+) of (?P<total>\d+)")
_MINIMUM_TRIALS = 6  # the numpy and plain checks; the test helpers add the ones the notebook imports


def grade_id(cell):
    """The cell's nbgrader id (graded, answer and read-only cells have one), or None."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def is_test_cell(cell):
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def is_student_code(cell):
    """A code cell whose source comes from the student: an answer cell or a cell the student added."""
    return cell.cell_type == "code" and (utils.is_solution(cell) or not grade_id(cell))


def failure_messages(notebook):
    """{test cell: its failure message, whole} of an autograded notebook."""
    messages = {}
    for cell in notebook.cells:
        errors = [output for output in cell.get("outputs", []) if output.output_type == "error"]
        if utils.is_grade(cell) and cell.cell_type == "code" and errors:
            messages[grade_id(cell)] = f"{errors[-1].ename}: {errors[-1].evalue}"
    return messages


def failed_output(message):
    return nbformat.v4.new_output("error", ename="NotGraded", evalue=message,
                                  traceback=[f"NotGraded: {message}"])


class RestoreInstructorCells(OverwriteCells):
    """nbgrader's OverwriteCells, which gives graded and read-only cells the instructor's source, points and
    lock back from the gradebook; and, in the same sanitizing step:
    - the notebook's own grading metadata is dropped (a submitted notebook's metadata is the student's
      to write), and what the pre-convert hook found is recorded instead;
    - every cell of the instructor's notebook gets its metadata back, tags included, so that a tag a
      student added to a test cell (skip-execution) has no effect;
    - a test cell that differs from its release only by its hidden tests is restored without a word
      (nbgrader would warn "checksum has changed" for every hidden test of every honest submission); a
      cell that the student did edit is reported once, in words, as a note.
    """

    def preprocess(self, nb, resources):
        findings.clear(nb)
        info = resources["nbgrader"]
        self._found = list(_refused.pop((info["student"], info["assignment"]), []))
        nb, resources = super().preprocess(nb, resources)
        self._restore_metadata(nb, info)
        self._find_deleted_cells(nb)
        edited = [f for f in self._found if f.kind == "edited-cell"]
        if edited:
            self.log.warning("%s/%s: %s", info["student"], info["assignment"],
                             "; ".join(finding.detail for finding in edited))
        for finding in self._found:
            findings.add(nb, finding)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        self._hidden_only = False
        name = grade_id(cell)
        if name:
            try:
                source = self.gradebook.find_source_cell(name, self.notebook_id, self.assignment_id).source
            except MissingEntry:
                source = None  # nbgrader drops the grade id and says so
            self._hidden_only = source is not None and cell.source.strip() in published_sources(source)
        return super().preprocess_cell(cell, resources, index)

    def report_change(self, name, attr, old, new):
        if attr == "checksum":
            if not self._hidden_only:
                self._found.append(Finding(
                    "edited-cell", f"the student edited cell {name}: graded as the instructor wrote it",
                    student=f"You changed the read-only cell {name}; it was graded as it was given to you.",
                    needs_ta=False))
        else:
            self._found.append(Finding(
                "edited-cell", f"the {attr} of cell {name} was changed from {old} to {new}: restored",
                needs_ta=False))

    def _find_deleted_cells(self, nb):
        with Gradebook(self.db_url) as gradebook:
            notebook = gradebook.find_notebook(self.notebook_id, self.assignment_id)
            graded = [cell.name for cell in notebook.grade_cells]
        present = {grade_id(cell) for cell in nb.cells}
        deleted = [name for name in graded if name not in present]
        if deleted:
            names = ", ".join(deleted[:5])
            self._found.append(Finding(
                "cells-missing", f"grade cells deleted or not run: {names}",
                student=f"These graded cells were missing from your notebook and score zero: {names}."))

    def _restore_metadata(self, nb, info):
        coursedir = CourseDirectory(config=self.config)
        folder = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"]))
        cells = nbformat.read(folder / f"{info['notebook']}.ipynb", as_version=4).cells
        trusted = {grade_id(c): c.metadata for c in cells if grade_id(c)}
        changed = []
        for cell in nb.cells:
            name = grade_id(cell)
            if name in trusted:
                restored = nbformat.from_dict(dict(trusted[name]))
                restored["nbgrader"] = cell.metadata["nbgrader"]  # as nbgrader's own sanitizing left it
                # only tags change how a cell runs; Jupyter itself adds other keys (scrolled, ...)
                if restored.get("tags", []) != cell.metadata.get("tags", []) and is_test_cell(cell):
                    changed.append(name)
                cell.metadata = restored
        if changed:
            self._found.append(Finding(
                "tags-restored", f"tags of test cells changed ({', '.join(changed[:3])}): restored",
                student="Tags that you added to test cells were removed before grading: every test ran."))


class GradingExecute(Execute):
    """nbgrader's Execute, with canaries, zero points for cells that did not run, an output limit and
    a scan for suspicious code; what it finds is recorded as findings in the notebook."""

    output_limit = Integer(
        1_000_000, config=True,
        help="Characters of output one cell may send; the rest is cut (ten times this for the notebook).",
    )
    store_widget_state = False  # widget messages are not output, and nothing would bound them

    def preprocess(self, nb, resources, km=None):
        found, tampering = suspicious_code(nb)
        secret = secrets.token_hex(8)
        nb.cells = with_canaries(nb.cells, secret)
        self._printed, self._cut, self._kernel_id, self._kernel = {}, set(), None, None
        stopped = ""
        try:
            nb, resources = super().preprocess(nb, resources, km)
        except DeadKernelError:
            if self._kernel_id in kernel.killed_for_time:
                stopped = "ran longer than the notebook time limit: stopped, the rest scores zero"
                limit = self._kernel.notebook_timeout
                found.append(Finding("time-limit", stopped, student=(
                    f"Your notebook ran longer than the time limit ({limit:g} s) and was stopped: the tests "
                    "after that point score zero.")))
            else:
                stopped = "the kernel died (a crash, os._exit, exit() or memory): the rest scores zero"
                found.append(Finding("kernel-died", stopped, student=(
                    "Python stopped while your notebook ran (a crash, exit() or too much memory): the tests "
                    "after that point score zero.")))
        found += kernel.found.pop(self._kernel_id, [])
        errors = {output.get("ename") for cell in nb.cells for output in cell.get("outputs", [])}
        if "MemoryError" in errors:
            found.append(Finding(
                "out-of-memory", f"{resources['nbgrader']['notebook']}.ipynb ran out of memory (MemoryError "
                "at the kernel's memory limit)",
                student="A cell ran out of memory (MemoryError): grading kernels have a limit of "
                        f"{self._kernel.memory_limit / 2**30:g} GiB."))
        if self._cut:
            found.append(Finding(
                "output-cut", f"printed more than {self.output_limit} characters in a cell: the rest was cut",
                student=f"A cell printed more than {self.output_limit:,} characters: the rest of its output "
                        "was cut."))
        found += judge_canaries(nb, secret, stopped or "the notebook stopped")
        if tampering is not None:
            found.append(distrust_after(nb, tampering, "code above can change how tests are judged"))
        for finding in found:
            findings.add(nb, finding)
        reason = findings.reason(findings.read(nb))
        if reason:
            self._flag(resources, reason)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if self._kernel is None:  # the manager of this notebook's kernel (nbclient forgets it at the end)
            self._kernel, self._kernel_id = self.km, self.km.kernel_id
        return super().preprocess_cell(cell, resources, index)

    def output(self, outs, msg, display_id, cell_index):
        # every kind of output counts (streams, errors, display data, metadata), by its size as text
        size = len(str(msg.get("content", "")))
        self._printed[cell_index] = self._printed.get(cell_index, 0) + size
        self._printed[None] = self._printed.get(None, 0) + size
        if self._printed[cell_index] <= self.output_limit and self._printed[None] <= 10 * self.output_limit:
            return super().output(outs, msg, display_id, cell_index)
        if cell_index not in self._cut:
            self._cut.add(cell_index)
            outs.append(nbformat.v4.new_output("stream", name="stdout",
                                               text=f"\n[output cut after {self.output_limit} characters]\n"))
        return None

    def _flag(self, resources, reason):
        info = resources["nbgrader"]
        self.log.warning("%s/%s/%s needs a TA: %s", info["student"], info["assignment"], info["notebook"],
                         reason)
        with Gradebook(info["db_url"]) as gradebook:
            notebook = gradebook.find_submission_notebook(info["notebook"], info["assignment"],
                                                          info["student"])
            notebook.flagged = True
            gradebook.db.commit()


def suspicious_code(nb):
    """What the student's code does that no notebook of this course needs (once per kind), and the id
    of the first cell whose code can change how tests are judged (or None)."""
    found, tampering = [], None
    for cell in nb.cells:
        if not is_student_code(cell):
            continue
        for pattern, what, tampers in _SUSPICIOUS:
            match = pattern.search(cell.source)
            if match:
                tampering = tampering or (cell.get("id") if tampers else None)
                if not any(what in finding.detail for finding in found):
                    quoted = match.group(0).strip()[:40]
                    found.append(Finding("suspicious-code", f"suspicious code: {what} ({quoted!r} in "
                                                            f"{_name(cell)})"))
    return found, tampering


def distrust_after(nb, cell_id, why):
    """Zero points for every test cell after the cell `cell_id`; return the finding to report."""
    seen, name = False, cell_id
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            seen, name = True, _name(cell)
        elif seen and is_test_cell(cell):
            cell.outputs.insert(0, failed_output(f"not trusted: {why}; a TA decides"))
    return Finding("tampering", f"the test cells after {name} score zero until a TA has read its code",
                   student=f"The tests after {name} score zero until a TA has read your code: {why}.")


def with_canaries(cells, secret):
    """The cells, with a canary after each test cell (known by the secret of this run)."""
    result = []
    for cell in cells:
        cell.metadata.pop("canary", None)  # a student's cell cannot pose as a canary
        result.append(cell)
        if is_test_cell(cell):
            canary = nbformat.v4.new_code_cell(_CANARY.format(secret=secret))
            canary.metadata["canary"] = {"secret": secret, "after": _name(cell)}
            result.append(canary)
    return result


def judge_canaries(nb, secret, stopped):
    """Remove the canaries, and keep the verdict of a test cell only where the canary after it ran and
    failed as it must. Return the findings: why test cells could not be trusted, if a canary says so.

    A test cell whose canary did not run did not finish (`stopped` says why). From the first canary that
    did not fail as it must, that test cell and every later one score zero: the student's code changed
    how tests are judged.
    """
    problem, kept = None, []
    for cell in nb.cells:
        canary = cell.metadata.get("canary")
        if not (isinstance(canary, dict) and canary.get("secret") == secret):
            if problem and is_test_cell(cell):
                cell.outputs.insert(0, failed_output(f"not trusted: {problem}"))
            kept.append(cell)
            continue
        tested = kept[-1]  # the test cell that this canary follows
        if problem:
            continue
        if cell.get("execution_count") is None:
            if not any(output.output_type == "error" for output in tested.outputs):
                tested.outputs.append(failed_output(f"this test did not finish: {stopped}"))
            continue
        problem = _canary_problem(cell, secret)
        if problem:
            tested.outputs.insert(0, failed_output(f"not trusted: {problem}"))
    nb.cells = kept
    return [Finding("tampering", f"{problem}; those test cells score zero")] if problem else []


def _canary_problem(cell, secret):
    """Why the canary says that test cells can no longer be trusted, or None."""
    tampered = f"tampering detected after test cell {cell.metadata['canary']['after']!r}: "
    errors = [output for output in cell.outputs if output.output_type == "error"]
    if not errors:
        return tampered + "a check that must fail showed no error (errors are hidden or cells are skipped)"
    ename = errors[-1].get("ename")
    if ename in ("KeyboardInterrupt", "CellTimeoutError"):  # a late interrupt of a slow test cell
        return (f"grading interrupted after test cell {cell.metadata['canary']['after']!r}: the check "
                f"cell after it was stopped ({ename})")
    answer = _CANARY_ANSWER.fullmatch(str(errors[-1].get("evalue", "")))
    if not answer or answer["secret"] != secret or ename != "AssertionError":
        return tampered + f"a check that must fail reported {ename} instead"
    held, total = int(answer["held"]), int(answer["total"])
    if held < total or total < _MINIMUM_TRIALS:
        return tampered + (f"numpy or the test helpers were replaced ({total - held} known-wrong checks "
                           "passed)")
    return None


def _name(cell):
    return grade_id(cell) or f"cell {cell.get('id', '?')}"


def refuse_links(assignment=None, student=None, notebooks=()):
    """nbgrader's pre-convert hook: move every link, device or other special file of a submission (the
    submission's folder itself included) to a new folder quarantine/<student>/<assignment>/<time>/,
    before nbgrader copies the submission; a notebook that was a link is replaced by the untouched
    release, which scores zero. If anything goes wrong, the whole submission is moved there instead:
    nbgrader then finds nothing to copy (it swallows a failing hook's exception). What it moved is
    recorded by RestoreInstructorCells, which runs next in the same process."""
    if not notebooks:
        return
    # nbgrader passes the --student and assignment patterns ("*"); the submission's folder names them:
    # <root>/submitted/<student>/<assignment>
    folder = Path(notebooks[0]).absolute().parent
    root, student, assignment = folder.parents[2], folder.parent.name, folder.name
    try:
        _refuse_links(root, student, assignment, folder, notebooks)
    except Exception:
        os.rename(folder, _new_quarantine(root, student, assignment) / "submission")
        raise


def _refuse_links(root, student, assignment, folder, notebooks):
    quarantine = None
    for path in (folder.parent, folder):
        if path.is_symlink() or not path.is_dir():
            os.rename(path, _new_quarantine(root, student, assignment) / path.name)
            return  # nothing is left to grade: nbgrader reports the notebooks as missing
    refused = []
    for path in sorted(folder.rglob("*")):  # rglob does not enter linked folders
        if not (path.is_dir() and not path.is_symlink()) and not stat.S_ISREG(path.lstat().st_mode):
            quarantine = quarantine or _new_quarantine(root, student, assignment)
            # moves the link itself, flat, into a folder made for it: nothing is followed or replaced
            name = path.relative_to(folder).as_posix()
            os.rename(path, quarantine / name.replace("/", "__"))
            refused.append(path)
            _refused.setdefault((student, assignment), []).append(Finding(
                "link", f"{name} is not a regular file (a link or a device): moved to {QUARANTINE}/",
                student=f"{name} is a link or a special file: grading left it out."))
    for path in map(Path, notebooks):
        release = root / "release" / assignment / path.name
        if path.absolute() in refused and release.is_file():
            nbformat.write(nbformat.read(release, as_version=4), path)
            _refused[(student, assignment)].append(Finding(
                "link", f"{path.name} was a link: moved to {QUARANTINE}/, graded as the release",
                student=f"{path.name} is a link, not a notebook: it was graded as the untouched release."))


def _new_quarantine(root, student, assignment):
    """A new, empty folder quarantine/<student>/<assignment>/<time-random>/, made without following links."""
    folder = Path(root)
    for part in (QUARANTINE, student, assignment):
        folder = folder / part
        folder.mkdir(exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():
            raise RuntimeError(f"{folder} is not a folder of the grader's")
    folder = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    folder.mkdir()
    return folder
