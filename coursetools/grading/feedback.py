"""Feedback that teaches without giving the hidden tests away, and speaks to the student only.

Plain `nbgrader generate_feedback` renders the autograded notebook as it is: the source of every hidden
test reaches every student (jupyter/nbgrader#917). nbgrader_config.py adds FeedbackForStudents to
GenerateFeedback, so that every way of writing feedback uses it:
- in a test cell that held hidden tests it removes the hidden region from the source; a test cell's
  outputs are the judge's own (coursetools.grading.judge): what the test printed and the check's message;
- paths of the grading machine (the grading folder, the Python environment) are cut from every output;
- what grading found about the submission is shown at the top, in the words meant for the student
  (coursetools.findings), and the TAs' note in formgrader's comment box is not shown.
The student's kernel never held a hidden test, so nothing it printed can quote one. Points and pass/fail
are nbgrader's own. TAs keep the full detail in autograded/ and in formgrader.

`notice_page` is the feedback of a submission that could not be graded at all (no notebook of the right
name, or one that cannot be read): a page that says why it scored zero.
"""

import html
import re

import jinja2
import nbformat
from nbconvert.exporters import HTMLExporter
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from coursetools import findings
from coursetools.grading.autograde import is_test_cell

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


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter, which compiles its templates anew for every notebook (0.4 s of a
    feedback page's 1 s); this one compiles them once per process."""

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = _COMPILED
        return environment


class FeedbackForStudents(ClearHiddenTests):
    """Remove hidden-test source and grader paths; show the student's grading notes; hide TA notes."""

    # the exporter configures this on every preprocessor of the feedback; declared as GetGrades does
    display_data_priority = GetGrades.display_data_priority

    def preprocess(self, nb, resources):
        nb, resources = super().preprocess(nb, resources)
        notes = [finding.student for finding in findings.read(nb) if finding.student]
        findings.clear(nb)  # the TAs' words stay in autograded/
        if notes:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(notes_markdown(notes)))
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        # only test cells hold hidden tests: a marker a student typed elsewhere is plain text
        if is_test_cell(cell):
            self._remove_hidden_test_region(cell)
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
