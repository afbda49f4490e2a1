"""Feedback that teaches without giving the hidden tests away, and speaks to the student only.

Plain `nbgrader generate_feedback` renders the autograded notebook as it is: the source of every hidden
test and the traceback lines that quote it reach every student (jupyter/nbgrader#917). nbgrader_config.py
adds FeedbackForStudents to GenerateFeedback, so that every way of writing feedback uses it:
- in a test cell that held hidden tests it removes the hidden region from the source and reduces each
  error to its last line, "AssertionError: <what was expected and what came back>";
- a student's code could print the hidden tests (the kernel's input history holds every cell it ran):
  any output line that quotes a line of a hidden test is replaced;
- paths of the grading machine (the grading folder, the Python environment) are cut from every output;
- what grading found about the submission is shown at the top, in the words meant for the student
  (coursetools.findings), and the TAs' note in formgrader's comment box is not shown.
Points and pass/fail are nbgrader's own. TAs keep the full detail in autograded/ and in formgrader.

`notice_page` is the feedback of a submission that could not be graded at all (no notebook of the right
name, or one that cannot be read): a page that says why it scored zero.
"""

import html
import re

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from coursetools import findings
from coursetools.autograde import is_test_cell

QUOTED = "[a line of a hidden test was here]"

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


class FeedbackForStudents(ClearHiddenTests):
    """Remove hidden-test source, the tracebacks and output lines that quote it, and grader paths; show
    the student's grading notes; hide TA notes."""

    # the exporter configures this on every preprocessor of the feedback; declared as GetGrades does
    display_data_priority = GetGrades.display_data_priority

    def preprocess(self, nb, resources):
        hidden = set()
        for cell in nb.cells:
            if is_test_cell(cell):
                hidden |= set(self._hidden_lines(cell.source))
        self._hidden = sorted(hidden, key=len, reverse=True)
        nb, resources = super().preprocess(nb, resources)
        notes = [finding.student for finding in findings.read(nb) if finding.student]
        findings.clear(nb)  # the TAs' words stay in autograded/
        if notes:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(notes_markdown(notes)))
        return nb, resources

    def _hidden_lines(self, source):
        """The lines of a cell's hidden region that say something (not blank lines or lone brackets)."""
        inside = False
        for line in source.splitlines():
            if self.begin_test_delimeter in line:
                inside = True
            elif self.end_test_delimeter in line:
                inside = False
            elif inside and len(re.findall(r"\w", line)) >= 4:
                yield line.strip()

    def preprocess_cell(self, cell, resources, cell_index):
        # only test cells hold hidden tests: a marker a student typed elsewhere is plain text
        if is_test_cell(cell) and self._remove_hidden_test_region(cell):
            for output in cell.outputs:
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        for output in cell.get("outputs", []):
            self._scrub(output)
        comment = cell.metadata.get("nbgrader", {}).get("comment")
        if comment and comment.startswith(findings.TA_NOTE_PREFIX):
            cell.metadata.nbgrader["comment"] = None  # for TAs, in formgrader
        return cell, resources

    def _scrub(self, output):
        if output.output_type == "stream":
            output.text = self._clean(output.text)
        elif output.output_type == "error":
            output.evalue = self._clean(output.evalue)
            output.traceback = [self._clean(line) for line in output.traceback]
        else:
            for kind, value in output.get("data", {}).items():
                if isinstance(value, str) and kind.startswith("text/"):
                    output.data[kind] = self._clean(value)

    def _clean(self, text):
        text = without_grader_paths(text)
        if not self._hidden or not any(line in text for line in self._hidden):
            return text
        return "\n".join(QUOTED if any(line in part for line in self._hidden) else part
                         for part in text.split("\n"))


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
