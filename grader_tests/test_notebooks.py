"""The notebooks themselves: valid nbgrader metadata, clean sources, releases that give nothing away."""

import ast

import nbformat
import pytest
from conftest import ASSIGNMENTS, COURSE_GROUP, ROOT, lines_of, load_json, secret_lines
from nbgrader.preprocessors import CheckCellMetadata

from coursetools.course import notebook_path
from coursetools.grading.judge import ends_with_cases


def read(kind, assignment):
    return nbformat.read(notebook_path(ROOT, kind, assignment), as_version=4)


def nbgrader_cells(notebook, **flags):
    """Cells whose nbgrader metadata has every one of `flags` (e.g. grade=True, solution=False)."""
    return [
        cell
        for cell in notebook.cells
        if all(cell.metadata.get("nbgrader", {}).get(flag, False) == value for flag, value in flags.items())
        and "nbgrader" in cell.metadata
    ]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_passes_nbgrader_metadata_checks(assignment):
    notebook = read("source", assignment)
    CheckCellMetadata().preprocess(notebook, {})
    ids = [cell.metadata["nbgrader"]["grade_id"] for cell in nbgrader_cells(notebook)]
    assert len(ids) == len(set(ids)), f"duplicate grade ids in {assignment}: {ids}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_is_saved_without_outputs(assignment):
    for cell in read("source", assignment).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"outputs saved in {cell.id}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_opens_with_a_docstring(assignment):
    tests = nbgrader_cells(read("source", assignment), grade=True, solution=False)
    assert tests, f"{assignment} has no test cells"
    for cell in tests:
        first = ast.parse(cell.source).body[0]
        is_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        assert is_docstring and isinstance(first.value.value, str), f"{cell.id} opens without a docstring"
        assert "\n" not in first.value.value.strip(), f"{cell.id}: the docstring should be one line"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_test_cell_ends_with_an_expression(assignment):
    """nbgrader reads a number that a test cell displays as its partial-credit score: display nothing, but
    for a last `cases(...)`, whose partial credit the judge writes."""
    for cell in nbgrader_cells(read("source", assignment), grade=True, solution=False):
        body = ast.parse(cell.source).body
        ends_well = len(body) == 1 or displays_nothing(body[-1], body) or ends_with_cases(cell.source)
        assert ends_well, f"{cell.id} ends with an expression"


@pytest.mark.parametrize("kind", ["release", "solutions"])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_published_test_cells_display_nothing(kind, assignment):
    """A test cell left with only its docstring (its hidden tests removed) must not display it: nbgrader
    validate would read it as a partial score and warn."""
    for cell in nbgrader_cells(read(kind, assignment), grade=True, solution=False):
        body = ast.parse(cell.source).body
        assert not isinstance(body[-1], ast.Expr) or displays_nothing(body[-1], body), f"{kind}: {cell.id}"


def displays_nothing(statement, body):
    """Not an expression, or a call of a check (expect_*) or of a function the cell defines itself:
    these return None."""
    if not isinstance(statement, ast.Expr):
        return True
    func = getattr(statement.value, "func", None)
    own_functions = {node.name for node in body if isinstance(node, ast.FunctionDef)}
    return isinstance(func, ast.Name) and (func.id.startswith("expect_") or func.id in own_functions)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_has_manually_graded_question(assignment):
    written = nbgrader_cells(read("source", assignment), grade=True, solution=True)
    assert any(cell.cell_type == "markdown" and cell.metadata["nbgrader"]["points"] > 0 for cell in written)


@pytest.mark.parametrize("kind", ["release", "solutions"])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_published_notebooks_hold_no_hidden_test(kind, assignment):
    published = lines_of(read(kind, assignment))
    assert not any("HIDDEN TESTS" in line for line in published)
    hidden = secret_lines(read("source", assignment), regions=("HIDDEN TESTS",))
    assert hidden, "the source should have hidden-test lines to look for"
    leaked = sorted(hidden & published)
    assert not leaked, f"hidden test lines in {kind}/{assignment}: {leaked}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_no_solution_code(assignment):
    release = lines_of(read("release", assignment))
    assert not any("SOLUTION" in line for line in release)
    lines = secret_lines(read("source", assignment))
    assert lines, "the source should have solution and hidden-test lines to look for"
    leaked = sorted(lines & release)
    assert not leaked, f"solution or hidden-test lines in release/{assignment}: {leaked}"


@COURSE_GROUP
@pytest.mark.parametrize("kind", ["release", "solutions"])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_notebooks_equal_a_regeneration_from_source(course, kind, assignment):
    """The committed release/ and solutions/ are what nbgrader makes of source/ today."""
    committed = ROOT / kind / assignment
    regenerated = course.root / kind / assignment
    assert sorted(p.name for p in committed.iterdir()) == sorted(p.name for p in regenerated.iterdir())
    for path in committed.iterdir():
        if path.suffix == ".ipynb":
            assert load_json(path) == load_json(regenerated / path.name), f"{kind}/{assignment}/{path.name}"
        else:
            same = path.read_bytes() == (regenerated / path.name).read_bytes()
            assert same, f"{kind}/{assignment}/{path.name}"
