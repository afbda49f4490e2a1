"""The similarity report (coursetools/similarity.py), tried on a scratch course without grading: nothing
runs, notebooks are only handed in. Fast: no kernel starts.

The honest students are the independently written correct answers of the corpus (grader_tests/corpus),
each corpus student holding its own answer to every function, or one answer alone, with the stub's `def`
line and docstring kept as students keep them; the copies are disguised: names changed, functions moved
and reordered, comments and docstrings rewritten.
"""

import ast
import io
import json
import shutil
import tokenize

import nbformat
import numpy as np
import pytest
from conftest import ASSIGNMENTS, ROOT
from nbgrader import utils

from coursetools import corpus, similarity
from coursetools.course import grade_id, notebook_path
from coursetools.examples import Answer, fill_answers, submit, submit_examples

CORRECT, MISTAKES = "example-correct", "example-mistakes"


@pytest.fixture
def course(tmp_path):
    """A scratch course: the notebooks, the example answers and the configuration; nothing handed in."""
    for folder in ("source", "release", "solutions", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)  # source/*/checks.py links are copied as files
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    return tmp_path


def read(root, kind, assignment):
    return nbformat.read(notebook_path(root, kind, assignment), as_version=4)


def answer_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code" and utils.is_solution(cell)]


def with_docstring(answer, release):
    """The answer with the `def` line and docstring of the released stub, as students keep them."""
    stub = next(cell.source for cell in release.cells if grade_id(cell) == answer.cell).splitlines()
    docstring = stub[1:stub.index("    # YOUR CODE HERE")]
    lines = answer.source.splitlines()
    if lines[0].startswith(f"def {answer.cell}("):
        lines[1:1] = docstring
    return Answer(answer.cell, "\n".join(lines))


def correct_answers(assignment):
    """{function: [correct answers of the corpus]}."""
    functions = corpus.read_corpus(ROOT)[assignment]
    return {function: [e.answer for e in entries if e.correct] for function, entries in functions.items()}


def corpus_students(root, assignment, layout):
    """Notebooks of independent students, from the correct answers of the corpus: "together", student k
    holds the k-th answer to each function; "alone", each answer is a student; the other answer cells are
    left as released."""
    release = read(root, "release", assignment)
    answers = correct_answers(assignment)
    if layout == "together":
        groups = [[own[k] for own in answers.values() if k < len(own)]
                  for k in range(max(len(own) for own in answers.values()))]
    else:
        groups = [[answer] for own in answers.values() for answer in own]
    return {f"corpus-{k}": fill_answers(release, [with_docstring(a, release) for a in group])
            for k, group in enumerate(groups)}


def disguised(notebook):
    """A copy of `notebook`'s answers as a copier hides it: every name that the answers bind renamed,
    comments and docstrings rewritten, and the functions of all answer cells moved into the first one,
    in reverse order (the other answer cells hold a comment)."""
    notebook = nbformat.from_dict(notebook)
    cells = answer_cells(notebook)
    trees = [ast.parse(cell.source) for cell in cells]
    bound = {node.id for tree in trees for node in ast.walk(tree)
             if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    bound |= {arg.arg for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Lambda)
              for arg in node.args.args}

    def rewritten(source):
        tokens = []
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and token.string in bound:
                token = token._replace(string=f"my_{token.string}_2")
            elif token.type == tokenize.COMMENT:
                token = token._replace(string="# done it my way")
            elif token.type == tokenize.STRING and token.string.startswith('"""'):
                token = token._replace(string='"""My own solution."""')
            tokens.append(token)
        return tokenize.untokenize(tokens)

    functions = [rewritten(cell.source) for cell in cells]
    cells[0].source = "\n\n".join(reversed(functions))
    for cell in cells[1:]:
        cell.source = "# see the first answer"
    return notebook, bound


def hand_in(root, assignment, notebooks):
    for student, notebook in notebooks.items():
        submit(root, assignment, student, notebook)


def pair_values(root, assignment):
    """{frozenset of two students: (smaller share, fewer shared tokens)} of every pair of the class, as
    compare measures them."""
    release = read(root, "release", assignment)
    answers, _ = similarity.read_submissions(root, assignment, release)
    boilerplate = similarity.boilerplate_hashes(release)
    prints = [similarity.fingerprint(code, boilerplate) for code in answers.values()]
    tokens = similarity.shared_tokens(prints)
    coverage = np.array([max(p.token_coverage, 1) for p in prints])
    shares = tokens / coverage[:, None]
    students = list(answers)
    return {frozenset({students[i], students[j]}): (min(shares[i, j], shares[j, i]),
                                                     min(tokens[i, j], tokens[j, i]))
            for i in range(len(students)) for j in range(i + 1, len(students))}


def flagged(pairs):
    return {frozenset({pair.student_a, pair.student_b}) for pair in pairs}


@pytest.mark.parametrize("layout", ["together", "alone"])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_independent_correct_answers_are_not_flagged(course, assignment, layout):
    submit_examples(course, assignment, kinds=["correct", "mistakes"])
    students = corpus_students(course, assignment, layout)
    hand_in(course, assignment, students)
    pairs = similarity.compare(course, assignment)
    assert sorted(pairs.students) == sorted([*students, CORRECT, MISTAKES])
    assert flagged(pairs) == set()
    # with margin: no honest pair comes near both thresholds at once
    near = {pair: values for pair, values in pair_values(course, assignment).items()
            if values[0] >= similarity.THRESHOLD - 0.1 and values[1] >= similarity.MIN_OVERLAP - 15}
    assert set(near) == set(), near


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_disguised_copy_is_flagged_and_shown_with_its_original(course, assignment):
    students = corpus_students(course, assignment, "together")
    copy, renamed = disguised(students["corpus-0"])
    hand_in(course, assignment, {**students, "copier": copy})
    # the disguise is real: other names, other order, other comments
    original_code = similarity.answer_code(students["corpus-0"])
    copied_code = similarity.answer_code(copy)
    names = {node.id for node in ast.walk(ast.parse(copied_code)) if isinstance(node, ast.Name)}
    assert renamed and not renamed & names
    defined = [node.name for node in ast.parse(original_code).body if isinstance(node, ast.FunctionDef)]
    assert [node.name for node in ast.parse(copied_code).body if isinstance(node, ast.FunctionDef)] == \
        defined[::-1]
    assert len(defined) >= 2
    pairs = similarity.compare(course, assignment)
    assert flagged(pairs) == {frozenset({"copier", "corpus-0"})}
    (pair,) = pairs
    assert min(pair.similarity_a, pair.similarity_b) >= 0.95
    assert pair.overlap >= similarity.MIN_OVERLAP + 15
    assert 'class="shared"' in pair.code_a and 'class="shared"' in pair.code_b
    page = similarity.write_report(course, assignment, pairs)
    assert page == course / f"similarity_{assignment}.html"
    html = page.read_text()
    assert "copier and corpus-0" in html
    assert f"{len(students) + 1} students compared, {(len(students) + 1) * len(students) // 2} pairs" in html
    assert "1 pair above the threshold" in html and "80 %" in html
    columns = html.split("<pre>")[1:]
    assert len(columns) == 2
    assert all('<span class="shared">' in column.split("</pre>")[0] for column in columns)
    assert "my_" in html  # the copier's own names, shown as written (escaped, never as markup)
    record = json.loads(page.with_suffix(".json").read_text())
    assert [(p["student_a"], p["student_b"]) for p in record["pairs"]] == [("copier", "corpus-0")]


def test_a_copy_too_short_to_tell_from_independent_work_is_not_flagged_and_the_page_says_so(course):
    # the reference answers of activations are one line each: np.maximum(0, x) and np.tanh(x)
    submit_examples(course, "activations", kinds=["correct"])
    copy, _ = disguised(read(course, "solutions", "activations"))
    hand_in(course, "activations", {"copier": copy})
    (share, tokens), = pair_values(course, "activations").values()
    assert share >= 0.95 and tokens < similarity.MIN_OVERLAP
    pairs = similarity.compare(course, "activations")
    assert pairs == []
    html = similarity.write_report(course, "activations").read_text()
    assert "No pair above the threshold." in html and "2 students compared, 1 pair;" in html


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_release_and_the_code_it_gives_are_boilerplate(course, assignment):
    release = read(course, "release", assignment)
    touched = nbformat.from_dict(release)  # the stubs kept, a comment changed: no longer "as released"
    for cell in answer_cells(touched):
        cell.source = cell.source.replace("# YOUR CODE HERE", "# TODO")
    # two independent students who both pasted the longest cell of code that the notebook gives (not a
    # test) below their first answer
    given = max((cell.source for cell in release.cells if cell.cell_type == "code"
                 and not utils.is_solution(cell) and not utils.is_grade(cell)), key=len)
    own = dict(list(corpus_students(course, assignment, "together").items())[:2])
    pasted = {}
    for student, notebook in own.items():
        pasted[student] = nbformat.from_dict(notebook)
        first = answer_cells(pasted[student])[0]
        first.source = f"{first.source}\n\n{given}"
    hand_in(course, assignment, {"untouched-1": release, "untouched-2": release, "touched-1": touched,
                                 "touched-2": touched, **{f"pasted-{k}": nb for k, nb in pasted.items()}})
    pairs = similarity.compare(course, assignment)
    assert len(pairs.students) == 6 and pairs == []
    # the boilerplate is what keeps them apart: of the stubs nothing counts, of the pasted code only
    # the k-grams that join it to the student's own code
    boilerplate = similarity.boilerplate_hashes(release)
    touched_cells = similarity.answer_cells(touched, release)
    assert touched_cells  # not "as released": the boilerplate alone keeps them out
    assert similarity.fingerprint(touched_cells, boilerplate).token_coverage == 0
    assert similarity.fingerprint(touched_cells).token_coverage > 0
    assert similarity.fingerprint(given).token_coverage >= similarity.MIN_OVERLAP
    for student in own:
        with_paste, without = (similarity.fingerprint(similarity.answer_cells(notebook, release), boilerplate)
                               for notebook in (pasted[student], own[student]))
        joints = with_paste.token_coverage - without.token_coverage
        assert 0 <= joints <= similarity.NOISE


def test_a_broken_notebook_is_skipped_with_a_note_and_the_others_are_compared(course):
    students = corpus_students(course, "digits_cv", "together")
    hand_in(course, "digits_cv", {**students, "copier": disguised(students["corpus-1"])[0]})
    broken = notebook_path(course, "submitted", "digits_cv", "broken")
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [ this is not JSON')
    pairs = similarity.compare(course, "digits_cv")
    assert [student for student, _ in pairs.skipped] == ["broken"]
    assert "not a readable notebook" in pairs.skipped[0][1]
    assert "broken" not in pairs.students and len(pairs.students) == len(students) + 1
    assert flagged(pairs) == {frozenset({"copier", "corpus-1"})}
    html = similarity.write_report(course, "digits_cv", pairs).read_text()
    assert "Not compared (1):" in html and "broken: not a readable notebook" in html


def test_answer_code_is_the_code_of_the_answer_cells_in_order(course):
    solution = read(course, "solutions", "linear_network")
    code = similarity.answer_code(solution)
    assert [node.name for node in ast.parse(code).body] == ["add_bias", "train", "feedforward"]
    assert "import" not in code and "expect_" not in code  # no given code, no test cell
    markdown = [cell.source for cell in solution.cells
                if cell.cell_type == "markdown" and utils.is_solution(cell)]
    assert markdown and markdown[0].strip() not in code  # the written answer is not code
    release = read(course, "release", "linear_network")
    assert "NotImplementedError" in similarity.answer_code(release)
    assert similarity.answer_code(release, release) == ""


def test_summary_reads_the_reports_and_writes_them_again_when_submissions_changed(course):
    students = corpus_students(course, "linear_network", "together")
    hand_in(course, "linear_network", students)
    similarity.write_report(course, "linear_network")
    rows = similarity.summary(course, ASSIGNMENTS)
    assert rows == [{"assignment": "linear_network", "students": len(students), "pairs_flagged": 0,
                     "page": "similarity_linear_network.html"}]
    hand_in(course, "linear_network", {"copier": disguised(students["corpus-2"])[0]})
    (row,) = similarity.summary(course, ["linear_network", "activations"])
    assert row["students"] == len(students) + 1 and row["pairs_flagged"] == 1
    assert "copier and corpus-2" in (course / row["page"]).read_text()


def test_two_hundred_students_are_compared_pair_by_pair(course):
    """Each student is fingerprinted once and the shared tokens of all pairs are counted at once (what that
    costs: benchmarks/similarity_cost.py)."""
    answers = corpus.read_corpus(ROOT)["digits_cv"]  # the longest answers, right and wrong
    release = read(course, "release", "digits_cv")
    rng = np.random.default_rng(0)
    for k in range(200):
        chosen = [entries[rng.integers(len(entries))].answer for entries in answers.values()]
        submit(course, "digits_cv", f"student-{k:03d}", fill_answers(release, chosen))
    pairs = similarity.compare(course, "digits_cv")
    assert pairs.compared == 19_900 and len(pairs.students) == 200
