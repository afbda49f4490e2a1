"""What makes an autograde rest on trusted code: nbgrader preprocessors and a hook (nbgrader_config.py
installs them, so `nbgrader autograde` and `course grade` both use them).

nbgrader judges a test cell by its outputs alone: a test cell without an error output earns its points.
Here those outputs are written by trusted code only:
- RestoreInstructorCells is nbgrader's OverwriteCells (graded and read-only cells get the instructor's
  source back) that also gives every cell of the instructor's notebook its metadata back (tags included),
  so a tag a student added to a test cell has no effect, and tells the restoring of hidden tests (silent)
  from a student's edit of a test (reported once, in words);
- JudgedExecute runs the notebook: the student's cells in the sandboxed kernel (coursetools.grading.kernel),
  the test cells in the judge, outside it (coursetools.grading.judge), in notebook order. A test cell that
  the judge did not run (the kernel died, the notebook ran past its time limit) gets an error and scores
  zero. It cuts kernel output beyond `output_limit` characters per cell (a flood would fill the grader's
  memory), notes for TAs what in the student's code no notebook of this course needs (it changes no
  score), and records what it found in the notebook's metadata (coursetools.findings), flags the submission
  in the gradebook when a finding needs a TA, and logs it;
- RecordMessages keeps each test cell's failure message and the findings in the gradebook's database
  (coursetools.messages), where the class report reads them without opening notebooks;
- intake.refuse_links (nbgrader's pre-convert hook) moves what grading leaves out of a submission (links
  and special files, files beyond the limits) out of it before nbgrader copies it, so nbgrader, running
  as root, never follows a link that a student made.
"""

import asyncio
import re
import resource
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat
import threadpoolctl
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, OverwriteCells
from traitlets import Dict, Enum, Integer, Unicode

from coursetools import findings, messages
from coursetools.course import (
    assignment_folder,
    grade_id,
    is_instructor_code,
    is_student_code,
    is_test_cell,
    read_instructor_notebook,
    setup_cells,
)
from coursetools.findings import Finding
from coursetools.grading import intake
from coursetools.grading.judge import HIDDEN_FEEDBACK, Judge, hidden_seed, snapshot_prelude
from coursetools.grading.release import published_sources
from coursetools.grading.warm_kernels import Setup

# What a notebook of this course never needs, matched in the cells a student can edit: a note for TAs (an
# attempt to read the course's files, reach the network or the grader, or bend the notebook's machinery).
# It changes no score: tests run in the judge, which no code in the kernel can reach.
SUSPICIOUS_CODE = [
    (r"gradebook|\bsolutions?/|['\"/](source|release|autograded|submitted)['\"/]|\.\./|/etc/|/root\b",
     "reads course or system files"),
    (r"\bos\.(walk|listdir|scandir|chdir)\b|\bglob\.", "explores the file system"),
    (r"\bfork\(|subprocess|\bos\.(system|popen|exec\w*|spawn\w*|kill|setsid)\b|multiprocessing"
     r"|\bpty\b", "starts or signals processes"),
    (r"\bsocket\b|urllib|requests\b|http\.client|ftplib|smtplib", "opens network connections"),
    (r"\bctypes\b|\bcffi\b|\bmmap\b", "calls C code or maps memory"),
    (r"(?<![\w.])(In|Out|_ih|_oh)\s*[\[)]|history_manager", "reads the notebook's history"),
    (r"get_ipython|\bIPython\b|set_custom_exc|input_transformers|ast_transformers|events\.register",
     "changes how the notebook runs"),
    (r"\bsys\.(settrace|setprofile|addaudithook)|_getframe|\binspect\b|f_locals|f_back",
     "traces or inspects the interpreter"),
    (r"NBGRADER|coursetools|\bshim\b", "looks for the grader"),
]
_SUSPICIOUS = [(re.compile(pattern, re.MULTILINE), what) for pattern, what in SUSPICIOUS_CODE]


def failed_output(message):
    return nbformat.v4.new_output("error", ename="NotGraded", evalue=message,
                                  traceback=[f"NotGraded: {message}"])


class RecordMessages(NbGraderPreprocessor):
    """Keeps the notebook's failure messages and findings in the gradebook's database
    (coursetools.messages), where the class report reads them without opening the notebook."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            messages.save(gradebook.db, info["assignment"], info["student"], info["notebook"],
                          messages.failure_messages(nb), findings.read(nb), findings.seed(nb))
            gradebook.db.commit()
        return nb, resources


class RestoreInstructorCells(OverwriteCells):
    """nbgrader's OverwriteCells, which gives graded and read-only cells the instructor's source, points and
    lock back from the gradebook; and, in the same sanitizing step:
    - the notebook's own grading metadata is dropped (a submitted notebook's metadata is the student's
      to write), and what the pre-convert hook found is recorded instead;
    - every cell of the instructor's notebook gets its metadata back, tags included, so that a tag a
      student added to a test cell (skip-execution) has no effect;
    - a test cell that differs from its release only by its hidden tests is restored without a word
      (nbgrader would warn "checksum has changed" for every hidden test of every honest submission); a
      cell that the student did edit is reported once, in words, as a note;
    - a test cell missing from the notebook (deleted, or added to the assignment after the hand-in) is
      put back where the instructor's notebook has it, and runs: test cells are the instructor's, and
      every answer is graded by all of them.
    """

    def preprocess(self, nb, resources):
        findings.clear(nb)
        info = resources["nbgrader"]
        self._found = intake.refused(info["student"], info["assignment"])
        self._put_back_missing_tests(nb, info)
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
            self._found.append(intake.cells_missing(deleted))

    def _put_back_missing_tests(self, nb, info):
        with Gradebook(info["db_url"]) as gradebook:  # (self.db_url is set by OverwriteCells, later)
            defined = {cell.name for cell in gradebook.find_notebook(
                info["notebook"], info["assignment"]).grade_cells}
        coursedir = CourseDirectory(config=self.config)
        folder = assignment_folder(coursedir, "source", info["assignment"])
        instructor = read_instructor_notebook(folder / f"{info['notebook']}.ipynb").cells
        put_back = []
        for index, cell in enumerate(instructor):
            present = {grade_id(c): at for at, c in enumerate(nb.cells) if grade_id(c)}
            name = grade_id(cell)
            if not is_test_cell(cell) or name in present or name not in defined:
                continue
            # after the nearest cell before it in the instructor's notebook that the student's notebook has
            after = next((present[grade_id(c)] for c in reversed(instructor[:index])
                          if grade_id(c) in present), -1)
            metadata = nbformat.from_dict(dict(cell.metadata))
            nb.cells.insert(after + 1, nbformat.v4.new_code_cell(cell.source, metadata=metadata))
            put_back.append(name)
        if put_back:
            names = ", ".join(put_back)
            self._found.append(Finding(
                "tests-put-back", f"test cells missing from the notebook were put back and graded: {names}",
                student=f"These test cells were missing from your notebook; they were put back and graded: "
                        f"{names}.", needs_ta=False))

    def _restore_metadata(self, nb, info):
        coursedir = CourseDirectory(config=self.config)
        folder = assignment_folder(coursedir, "source", info["assignment"])
        cells = read_instructor_notebook(folder / f"{info['notebook']}.ipynb").cells
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


class JudgedExecute(Execute):
    """nbgrader's Execute, with the test cells run by the judge outside the student's kernel; test cells
    that did not run score zero; kernel output is capped; what it finds is recorded as findings."""

    output_limit = Integer(1_000_000, help="Characters of output one cell may send; the rest is cut (ten "
                                           "times this for the notebook).").tag(config=True)
    answer_limit = Integer(64 * 2**20, help="Bytes of one answer from the kernel.").tag(config=True)
    memory_limit = Integer(2 * 2**30, help="Bytes of data memory (RLIMIT_DATA) of the process that runs the "
                           "judge: past it the judge meets a MemoryError, which stops judging that notebook "
                           "and flags it; the batch goes on. 0 for no limit.").tag(config=True)
    transcript = Unicode("", help="A file to which the judge appends everything it sends to students' "
                                  "kernels (for tests and audits); none when empty.").tag(config=True)
    hidden_feedback = Dict(value_trait=Enum(HIDDEN_FEEDBACK), key_trait=Unicode(), help=(
        "How much a failed hidden test shows, per assignment ({assignment: level}; '*' for the others): "
        "'message' (the default: what was wrong, the shape or the first wrong position and its input, "
        "without the expected values of the student's hidden inputs), 'full' (expected and got) or "
        "'pass/fail'. Visible tests always show everything.")).tag(config=True)
    other_seeds = Integer(0, help="Judge every test that draws its inputs from the student's seed under "
                                  "this many other seeds too, and fail it where its verdict changes (a "
                                  "check of the tests themselves: the answer corpus uses it).",
                          ).tag(config=True)
    store_widget_state = False  # widget messages are not output, and nothing would bound them

    def preprocess(self, nb, resources, km=None):
        began = time.perf_counter()
        bound_judge_process(self.memory_limit)
        found = suspicious_code(nb)
        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        folder = assignment_folder(coursedir, "source", info["assignment"])
        source = read_instructor_notebook(folder / f"{info['notebook']}.ipynb")
        seed = hidden_seed(coursedir.course_id, info["assignment"], info["student"])
        findings.set_seed(nb, seed)  # with the grade, for audit: the same inputs at every regrade
        told = self.hidden_feedback.get(info["assignment"], self.hidden_feedback.get("*", "message"))
        self.judge = Judge(source, folder / "checks.py", timeout=self.timeout or 60,
                           max_bytes=self.answer_limit, transcript=self.transcript or None, seed=seed,
                           hidden_feedback=told, other_seeds=[
                               hidden_seed(coursedir.course_id, info["assignment"], info["student"], round_)
                               for round_ in range(1, self.other_seeds + 1)])
        self._printed, self._cut, self._kernel = {}, set(), None
        self._judged = set()
        self._student_cpu = 0.0
        self._setup = setup_cells(nb, self.judge.cells)
        self._snapshotted = {}  # index -> outputs of a set-up cell that ran in the kernel's snapshot
        self._judge_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        stopped, self._running = "", None
        try:
            nb, resources = super().preprocess(nb, resources, km)
        except CellTimeoutError:  # interrupted at the cell limit, the kernel went on: nbclient shuts it down
            cell, limit = self._running_cell(nb), f"{self.timeout:g} s" if self.timeout else "no"
            stopped = f"{cell} ran past the {limit} limit and ignored the interrupt: kernel stopped"
            nb.cells[self._running].outputs.append(nbformat.v4.new_output(
                "error", ename="TimeoutError", evalue=stopped, traceback=[f"TimeoutError: {stopped}"]))
            found.append(Finding("cell-time-limit", f"{stopped}; the rest scores zero", student=(
                f"{cell[:1].upper()}{cell[1:]} ran longer than the time limit ({limit}) and could "
                "not be interrupted, so grading stopped there: it and the tests after it score zero.")))
        except DeadKernelError:
            if self._kernel and self._kernel.killed_for_time:
                limit = self._kernel.notebook_timeout
                stopped = (f"{self._running_cell(nb)} ran past the notebook time limit "
                           f"({limit:g} s): kernel stopped, the rest scores zero")
                found.append(Finding("time-limit", stopped, student=(
                    f"Your notebook ran longer than the time limit ({limit:g} s) and was stopped: the tests "
                    "after that point score zero.")))
            else:
                stopped = "the kernel died (a crash, os._exit, exit() or memory): the rest scores zero"
                found.append(Finding("kernel-died", stopped, student=(
                    "Python stopped while your notebook ran (a crash, exit() or too much memory): the tests "
                    "after that point score zero.")))
        finally:
            self._judge_thread.submit(self.judge.close).result()
            self._judge_thread.shutdown()
        for index, cell in enumerate(nb.cells):  # nbgrader gives a test cell without an error its points
            if is_test_cell(cell) and index not in self._judged:
                cell.outputs = [failed_output(f"this test did not run: {stopped or 'the notebook stopped'}")]
        found += self._kernel.findings if self._kernel else []
        if self.judge.out_of_memory:
            found.append(Finding(
                "judge-out-of-memory", f"the grader ran out of memory judging {info['notebook']}.ipynb (its "
                f"bound: {self.memory_limit / 2**30:g} GiB): the tests from there on were not judged",
                student="Grading your notebook took more memory than the grader allows: the tests from that "
                        "point on were not judged. A TA will look at it."))
        if self._cut:
            found.append(Finding(
                "output-cut", f"printed more than {self.output_limit} characters in a cell: the rest was cut",
                student=f"A cell printed more than {self.output_limit:,} characters: the rest of its output "
                        "was cut."))
        errors = {output.get("ename") for cell in nb.cells for output in cell.get("outputs", [])}
        if "MemoryError" in errors:
            found.append(Finding(
                "out-of-memory", f"{info['notebook']}.ipynb ran out of memory (MemoryError at the kernel's "
                "memory limit)",
                student="A cell ran out of memory (MemoryError): grading kernels have a limit of "
                        f"{self._kernel.memory_limit / 2**30:g} GiB."))
        for finding in found:
            findings.add(nb, finding)
        findings.set_student_cpu(nb, self._student_cpu)
        calls, overhead = self.judge.call_seconds, sorted(self.judge.overhead_seconds) or [0.0]
        self.log.info("%s/%s: %d calls to the student's kernel, %.2f s in all; beyond the student's "
                      "functions a call cost median %.1f ms, worst %.1f ms, %.3f s in all; the student's "
                      "code used %.2f s of CPU in the kernel", info["student"], info["assignment"],
                      len(calls), sum(calls), 1000 * overhead[len(overhead) // 2], 1000 * overhead[-1],
                      sum(overhead), self._student_cpu)
        reason = findings.reason(findings.read(nb))
        if reason:
            self._flag(resources, reason)
        self.log.debug("judged %s in %.2f s", info["notebook"], time.perf_counter() - began)
        return nb, resources

    def _running_cell(self, nb):
        """The cell that was running when the kernel was stopped, in words ("cell feedforward")."""
        if self._running is None:
            return "the kernel's start"
        cell = nb.cells[self._running]
        return f"cell {grade_id(cell)}" if grade_id(cell) else f"the cell {cell.get('id', '?')} (added)"

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.student_files_only = True  # the kernel gets no code file of the course: tests run in the judge
        if self._setup:
            km.setup = Setup.of([cell.source for _, cell in self._setup], snapshot_prelude())
        return km

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        self._kernel = self.km
        outputs = getattr(self.km, "setup_outputs", None)
        if outputs is not None and len(outputs) == len(self._setup):
            self._snapshotted = {index: found for (index, _), found in zip(self._setup, outputs, strict=True)}
        started = time.perf_counter()
        await self._in_judge(self.judge.connect, self.km)
        self.log.debug("judge: connected, %.2f s", time.perf_counter() - started)
        return kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)  # nbclient's sync name, bound anew

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if not (is_student_code(cell) or is_test_cell(cell)):
            return await self._execute_cell(cell, cell_index, execution_count, store_history)
        # the floor of grading: the CPU that the student's own cells and functions use in the kernel (a
        # test cell's only work there is the judge's calls to them)
        cpu = self.km.cpu_seconds()
        try:
            return await self._execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            self._student_cpu += max(0.0, self.km.cpu_seconds() - cpu)

    async def _execute_cell(self, cell, cell_index, execution_count, store_history):
        started = time.perf_counter()
        self._running = cell_index
        if is_test_cell(cell):
            cell.outputs = await self._in_judge(self.judge.run_test_cell, grade_id(cell))
            self._judged.add(cell_index)
            self.log.debug("judge: test cell %s, %.2f s", grade_id(cell), time.perf_counter() - started)
            return cell
        if cell_index in self._snapshotted:  # it ran once, for every kernel of the assignment
            cell.outputs = [nbformat.from_dict(output) for output in self._snapshotted[cell_index]]
        else:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        self.log.debug("kernel: cell %s, %.2f s", grade_id(cell) or cell_index, time.perf_counter() - started)
        if is_instructor_code(cell) and self.judge.runs_here(cell):
            started = time.perf_counter()
            error = await self._in_judge(self.judge.run_instructor_cell, grade_id(cell))
            if error is not None:
                self.log.warning("the judge could not run cell %s: %r", grade_id(cell), error)
            self.log.debug("judge: cell %s, %.2f s", grade_id(cell), time.perf_counter() - started)
        return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient's sync name, bound anew

    async def _in_judge(self, function, *args):
        """Run the judge's work in its own thread (its kernel client's sockets stay in that thread), with
        nbclient's event loop free meanwhile, and in a fresh context: jupyter_core keeps its event loop in
        a context variable, which asyncio.to_thread would carry over."""
        return await asyncio.get_running_loop().run_in_executor(self._judge_thread, function, *args)

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


def bound_judge_process(limit):
    """Bound this process's data memory (the soft RLIMIT_DATA, so a kernel it starts can set its own): an
    answer, or a use of a stand-in, that needs more meets a MemoryError here, not the machine's OOM killer.
    And its BLAS to one thread, as the kernels' (see nbgrader_config.py)."""
    threadpoolctl.threadpool_limits(1)  # the judge fits stand-in models: one BLAS thread, as the kernels
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if limit and (soft == resource.RLIM_INFINITY or soft > limit):
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def suspicious_code(nb):
    """Notes for TAs: what the student's code does that no notebook of this course needs (once per kind)."""
    found = []
    for cell in nb.cells:
        if not is_student_code(cell):
            continue
        for pattern, what in _SUSPICIOUS:
            match = pattern.search(cell.source)
            if match and not any(what in finding.detail for finding in found):
                quoted = match.group(0).strip()[:40]
                detail = f"suspicious code: {what} ({quoted!r} in {_name(cell)})"
                found.append(Finding("suspicious-code", detail, needs_ta=False))
    return found


def _name(cell):
    return grade_id(cell) or f"cell {cell.get('id', '?')}"
