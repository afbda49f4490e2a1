"""What students get: nbgrader's ClearHiddenTests, for release notebooks whose hidden-test cells show nothing.

A test cell that holds only hidden tests keeps just its docstring in the release. Run as it is, the cell
would display that string, and `nbgrader validate` reads a displayed value as a partial score ("Cell
output is '...', which cannot be converted to a float"). So such a cell gets one statement in place of its
hidden tests, which displays nothing and says where they went. nbgrader_config.py puts this preprocessor
where generate_assignment has ClearHiddenTests; at autograde, nbgrader restores the instructor's source.
"""

import ast

from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Unicode


class ClearHiddenTestsQuietly(ClearHiddenTests):
    placeholder = Unicode(
        "pass  # the hidden tests of this cell run when your notebook is graded",
        help="The line that replaces hidden tests when the cell would otherwise end with an expression.",
    ).tag(config=True)

    def _remove_hidden_test_region(self, cell):
        removed = super()._remove_hidden_test_region(cell)
        if removed and cell.cell_type == "code" and _ends_with_expression(cell.source):
            cell.source = f"{cell.source.rstrip()}\n{self.placeholder}"
        return removed


def published_sources(source):
    """The forms a test cell with this source takes in what students get, stripped: the instructor's own,
    the release's (hidden tests replaced) and the published solution's (hidden tests removed)."""
    from nbformat.v4 import new_code_cell

    forms = {source.strip()}
    for clear in (ClearHiddenTestsQuietly(enforce_metadata=False), ClearHiddenTests(enforce_metadata=False)):
        cell = new_code_cell(source)
        clear._remove_hidden_test_region(cell)
        forms.add(cell.source.strip())
    return forms


def _ends_with_expression(source):
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and isinstance(body[-1], ast.Expr)
