"""Feedback that teaches without giving the hidden tests away.

Plain `nbgrader generate_feedback` renders the autograded notebook as it is: the source of every hidden
test and the traceback lines that quote it reach every student (jupyter/nbgrader#917). nbgrader_config.py
adds this preprocessor to GenerateFeedback, so that every way of writing feedback uses it. In a test cell
that held hidden tests it removes the hidden region from the source and reduces each error to its last
line, "AssertionError: <what was expected and what came back>". A student's code could also print the
hidden tests (the kernel's input history holds every cell it ran): any output line that quotes a line of
a hidden test is replaced. Points and pass/fail are nbgrader's own. TAs keep the full detail in
autograded/ and in formgrader.
"""

import re

from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from coursetools.autograde import is_test_cell

QUOTED = "[a line of a hidden test was here]"


class HideHiddenTests(ClearHiddenTests):
    """Remove hidden-test source, the tracebacks that quote it and output lines that quote it."""

    # the exporter configures this on every preprocessor of the feedback; declared as GetGrades does
    display_data_priority = GetGrades.display_data_priority

    def preprocess(self, nb, resources):
        hidden = set()
        for cell in nb.cells:
            if is_test_cell(cell):
                hidden |= set(self._hidden_lines(cell.source))
        self._hidden = sorted(hidden, key=len, reverse=True)
        return super().preprocess(nb, resources)

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
        return cell, resources

    def _scrub(self, output):
        if output.output_type == "stream":
            output.text = self._without_hidden_lines(output.text)
        elif output.output_type == "error":
            output.evalue = self._without_hidden_lines(output.evalue)
            output.traceback = [self._without_hidden_lines(line) for line in output.traceback]
        else:
            for kind, value in output.get("data", {}).items():
                if isinstance(value, str) and kind.startswith("text/"):
                    output.data[kind] = self._without_hidden_lines(value)

    def _without_hidden_lines(self, text):
        if not self._hidden or not any(line in text for line in self._hidden):
            return text
        return "\n".join(QUOTED if any(line in part for line in self._hidden) else part
                         for part in text.split("\n"))
