"""Feedback that teaches without giving the hidden tests away.

Plain `nbgrader generate_feedback` renders the autograded notebook as it is: the source of every hidden
test and the traceback lines that quote it reach every student (jupyter/nbgrader#917). nbgrader_config.py
adds this preprocessor to GenerateFeedback, so that every way of writing feedback uses it. In a cell that
held hidden tests it removes the hidden region from the source and reduces each error to its last line,
"AssertionError: <what was expected and what came back>". Points and pass/fail are nbgrader's own.
TAs keep the full detail in autograded/ and in formgrader.
"""

from nbgrader.preprocessors import ClearHiddenTests, GetGrades


class HideHiddenTests(ClearHiddenTests):
    """Remove hidden-test source and the tracebacks that quote it; keep the failure messages."""

    # the exporter configures this on every preprocessor of the feedback; declared as GetGrades does
    display_data_priority = GetGrades.display_data_priority

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and self._remove_hidden_test_region(cell):
            for output in cell.outputs:
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
