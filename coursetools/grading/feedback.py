"""Feedback that teaches without giving the hidden tests away, and speaks to the student only.

Plain `nbgrader generate_feedback` renders the autograded notebook as it is: the source of every hidden
test reaches every student (jupyter/nbgrader#917). nbgrader_config.py adds FeedbackForStudents to
GenerateFeedback, so that every way of writing feedback uses it:
- in a test cell that held hidden tests it removes the hidden region from the source; a test cell's
  outputs are the judge's own (coursetools.grading.judge): what the test printed and the check's message;
- paths of the grading machine (the grading folder, the Python environment) are cut from every output;
- what grading found about the submission is shown at the top, in the words meant for the student
  (coursetools.findings), and the TAs' note in formgrader's comment box is not shown;
- each graded cell is named (a test by its docstring's first line), and hand-graded points that no TA
  has graded yet are pending, not zero: FeedbackExporter renders the page with nbgrader's feedback
  template as coursetools/templates/feedback.html.j2 changes it, from what FeedbackForStudents puts in
  each cell's nbgrader metadata (test_name, pending) and in resources (pending_points).
The student's kernel never held a hidden test, so nothing it printed can quote one. Points and pass/fail
are nbgrader's own. TAs keep the full detail in autograded/ and in formgrader.

`notice_page` is the feedback of a submission that could not be graded at all (no notebook of the right
name, or one that cannot be read): a page that says why it scored zero.
"""

import ast
import html
import re
from pathlib import Path

import jinja2
import nbformat
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from traitlets import default

from coursetools import findings
from coursetools.course import is_test_cell

# absolute paths of the grading machine, up to the part that tells the student something
_GRADER_PATHS = [
    re.compile(r"(?:/[\w.+@-]+)+/(?:site-packages|dist-packages)/"),  # a library: sklearn/base.py
    re.compile(r"(?:/[\w.+@-]+)+/lib/python3\.\d+/"),  # the standard library: warnings.py
    re.compile(r"(?:/[\w.+@-]+)*/autograded/[^/\n\x1b]+/[^/\n\x1b]+/"),  # the notebook's folder: checks.py
    re.compile(r"/(?:dev/shm|tmp)/[\w.-]+/(?:[\w.-]+/)*"),  # scratch folders of the grader and kernel
]


def without_grader_paths(text):
    for pattern in _GRADER_PATHS:
        text = pattern.sub("", text)
    return text


class _CompiledTemplates(jinja2.BytecodeCache):
    """Jinja's compiled templates, kept for the process (checked against each template's source)."""

    def __init__(self):
        self._code = {}

    def load_bytecode(self, bucket):
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket):
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter with the course's feedback template (feedback.html.j2, which extends
    nbgrader's); nbconvert compiles its templates anew for every notebook (0.4 s of a feedback page's 1 s),
    this exporter compiles them once per process."""

    @default("extra_loaders")
    def _extra_loaders_default(self):
        return [jinja2.FileSystemLoader(TEMPLATES)]

    @default("template_file")
    def _template_file_default(self):
        return "feedback.html.j2"

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = _COMPILED
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        """HTMLExporter's rendering without its second pass, which parses the whole page again with
        BeautifulSoup (0.2-0.3 s a page) to give images alt text: feedback.html.j2 writes it itself. The
        pass's tabindex goes on JupyterLab's cells, which the classic page that nbgrader's template
        extends has not. The filters are those HTMLExporter.from_notebook_node registers."""
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
        resources = self._init_resources(resources)
        filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self,
                                                 resources=resources)
        self.register_filter("highlight_code", highlight_code)
        self.register_filter("filter_data_type", filter_data_type)
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)


class FeedbackForStudents(ClearHiddenTests):
    """Remove hidden-test source and grader paths; show the student's grading notes; hide TA notes; name
    each graded cell and mark the hand-graded ones that no TA has graded yet. Runs after GetGrades."""

    # the exporter configures this on every preprocessor of the feedback; declared as GetGrades does
    display_data_priority = GetGrades.display_data_priority
    _pending = frozenset()  # grade ids of the notebook's cells that wait for a TA

    def preprocess(self, nb, resources):
        self._pending = pending_grades(resources)
        nb, resources = super().preprocess(nb, resources)
        notes = [finding.student for finding in findings.read(nb) if finding.student]
        findings.clear(nb)  # the TAs' words stay in autograded/
        if notes:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(notes_markdown(notes)))
        if "nbgrader" in resources:
            resources["nbgrader"]["pending_points"] = sum(
                float(cell.metadata.nbgrader.get("points") or 0) for cell in nb.cells
                if cell.metadata.get("nbgrader", {}).get("pending"))
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        # only test cells hold hidden tests: a marker a student typed elsewhere is plain text
        if is_test_cell(cell):
            self._remove_hidden_test_region(cell)
        if utils.is_grade(cell) or utils.is_task(cell):
            cell.metadata.nbgrader["test_name"] = graded_cell_name(cell)
            cell.metadata.nbgrader["pending"] = cell.metadata.nbgrader.get("grade_id") in self._pending
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = without_grader_paths(output.text)
            elif output.output_type == "error":
                output.evalue = without_grader_paths(output.evalue)
                output.traceback = [without_grader_paths(line) for line in output.traceback]
            else:
                for kind, value in output.get("data", {}).items():
                    if isinstance(value, str) and kind.startswith("text/"):
                        output.data[kind] = without_grader_paths(value)
        comment = cell.metadata.get("nbgrader", {}).get("comment")
        if comment and comment.startswith(findings.TA_NOTE_PREFIX):
            cell.metadata.nbgrader["comment"] = None  # for TAs, in formgrader
        return cell, resources


def pending_grades(resources):
    """Grade ids of the submitted notebook's cells that wait for a TA: neither graded automatically nor by
    hand (a written answer the student changed; nbgrader counts it as 0 until a TA gives its score)."""
    info = resources.get("nbgrader") or {}
    if not info.get("db_url"):
        return frozenset()
    with Gradebook(info["db_url"]) as gradebook:
        notebook = gradebook.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
        return frozenset(grade.name for grade in notebook.grades
                         if grade.manual_score is None and grade.auto_score is None)


def graded_cell_name(cell):
    """What the feedback calls a graded cell: a test the first line of its docstring (its grade id if it
    has none), an answer graded by hand its kind and grade id."""
    grade_id = cell.metadata.nbgrader.get("grade_id", "")
    if is_test_cell(cell):
        return docstring_line(cell.source) or grade_id
    if utils.is_task(cell):
        return f"Task ({grade_id})"
    kind = "Coding free-response" if cell.cell_type == "code" else "Written answer"
    return f"{kind} ({grade_id})"


def docstring_line(source):
    """The first line of the docstring that opens a cell's source ("" if none, or if it is not Python)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        # IPython's magics made Python (IPython is imported only here: 0.2 s that nbgrader needs not)
        from IPython.core.inputtransformer2 import TransformerManager

        try:
            tree = ast.parse(TransformerManager().transform_cell(source))
        except (SyntaxError, ValueError):
            return ""
    docstring = (ast.get_docstring(tree) or "").strip()
    return docstring.splitlines()[0].strip() if docstring else ""


def notes_markdown(notes):
    return "**Grading notes**\n\n" + "\n".join(f"- {note}" for note in notes)


def notice_page(assignment, notebook, found):
    """The feedback page of a notebook that could not be graded: what grading found, for the student."""
    notes = "".join(f"<li>{html.escape(f.student)}</li>" for f in found if f.student)
    title = html.escape(f"{assignment}: {notebook}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body style='font-family:sans-serif;max-width:48em;margin:2em auto'><h1>{title}</h1>"
            f"<p><b>Score: 0</b>. Your submission could not be graded:</p><ul>{notes}</ul>"
            "<p>Ask your TA how to hand it in again.</p></body></html>")
