"""Kernels forked from a snapshot of an assignment's set-up cells.

The instructor's read-only cells before the student's first cell (imports, data, a fitted network) run
once per assignment, in a snapshot; each student's kernel is forked from it. A student's edit of such a
cell changes nothing (nbgrader restores the instructor's source, and the snapshot runs only that), the
points are those of kernels that run the cells themselves, and nothing passes from one kernel forked from
the snapshot to the next.
"""

import asyncio
import os

import nbformat
import pytest
from conftest import automatic_scores, grades, new_course, private_uids
from traitlets.config import Config

from coursetools.course import nbgrader, notebook_path, setup_cells
from coursetools.examples import submit
from coursetools.grading.judge import snapshot_prelude
from coursetools.grading.kernel import GradingKernelManager
from coursetools.grading.sandbox import sandbox_disabled, sandbox_missing
from coursetools.grading.warm_kernels import Setup

pytestmark = [pytest.mark.skipif(
    os.geteuid() != 0 or bool(sandbox_missing()) or sandbox_disabled(),
    reason="kernels are forked from snapshots as root, in the sandbox"), pytest.mark.xdist_group("warm")]

ASSIGNMENTS = ["hidden_layers", "linear_network"]
EDITED = "edited-setup"  # the correct answers, in a notebook whose set-up cells the student changed


def edited_setup(root):
    """The reference solution of hidden_layers with its data and network cells changed, as a student
    might (other data, a network that is never fitted)."""
    notebook = nbformat.read(notebook_path(root, "solutions", "hidden_layers"), as_version=4)
    for cell in notebook.cells:
        name = cell.metadata.get("nbgrader", {}).get("grade_id")
        if name == "data":
            cell.source = cell.source.replace("random_state=3", "random_state=4") + "\nfeatures[:] = 0"
        elif name == "network":
            cell.source = "network = None"
    return notebook


@pytest.fixture(scope="module")
def graded(tmp_path_factory, course_template):
    """The example students and the edited set-up graded with snapshots (the course's configuration) and
    with every kernel running its set-up cells itself."""
    courses = {}
    for way, snapshot in (("snapshot", True), ("in-kernel", False)):
        root = new_course(course_template, tmp_path_factory.mktemp(way), ASSIGNMENTS, 600)
        with open(root / "nbgrader_config.py", "a") as config:
            config.write(f"\nc.GradingKernelManager.snapshot = {snapshot}\n")
        submit(root, "hidden_layers", EDITED, edited_setup(root))
        nbgrader(root, "autograde", "*", "--force")
        courses[way] = root
    return courses


def students(root):
    return sorted(path.name for path in (root / "submitted").iterdir())


def test_every_submission_gets_the_points_of_kernels_that_run_their_set_up_cells(graded):
    snapshot, in_kernel = graded["snapshot"], graded["in-kernel"]
    assert students(snapshot) == students(in_kernel)
    examples = [student for student in students(snapshot) if student != EDITED]
    for who, assignments in ((examples, ASSIGNMENTS), ([EDITED], ["hidden_layers"])):
        found = grades(snapshot, who, assignments)
        assert found and found == grades(in_kernel, who, assignments)


def test_an_edited_set_up_cell_is_graded_as_if_it_had_not_been(graded):
    for root in graded.values():
        edited = automatic_scores(root, EDITED, "hidden_layers")
        assert edited == automatic_scores(root, "example-correct", "hidden_layers")
        assert not edited["flagged"] and sum(v for k, v in edited.items() if k != "flagged") > 0


def counts(root):
    """The execution counts of the set-up cells of the edited submission's graded notebook."""
    notebook = nbformat.read(notebook_path(root, "autograded", "hidden_layers", EDITED), as_version=4)
    return [cell.execution_count for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("grade_id") in ("setup", "data", "network")]


def test_the_set_up_cells_show_what_they_printed(graded):
    def outputs(root):
        notebook = nbformat.read(notebook_path(root, "autograded", "hidden_layers", EDITED), as_version=4)
        return {cell.metadata["nbgrader"]["grade_id"]: [output.get("text") for output in cell.outputs]
                for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") in
                ("setup", "data", "network")}

    found = outputs(graded["snapshot"])
    assert found == outputs(graded["in-kernel"])
    # they ran in the snapshot, not in the kernel: the kernel did not number them
    assert counts(graded["snapshot"]) == [None] * 3 and None not in counts(graded["in-kernel"])
    assert found["network"] == ["[(3, 4), (4, 1)] [(4,), (1,)]\n"]  # the instructor's network, fitted


def test_kernels_forked_from_one_snapshot_start_from_its_state_and_share_nothing(tmp_path):
    """Two kernels of one assignment: both find what the set-up cells made, which ran once (not in
    either kernel), and what the first kernel changes, the second does not see."""
    root = tmp_path
    (root / "source" / "lesson").mkdir(parents=True)
    (root / "source" / "lesson" / "data.csv").write_text("x\n1\n2\n")
    work = root / "autograded" / "someone" / "lesson"
    work.mkdir(parents=True)
    (work / "data.csv").write_text("x\n1\n2\n")
    cells = ["import os\nimport numpy as np\nmade_in = os.getpid()\nprint('set up')",
             "values = np.loadtxt('data.csv', skiprows=1)\nfloat(values.sum())"]
    config = Config()
    config.CourseDirectory.root = str(root)
    config.GradingKernelManager.first_uid = private_uids().start
    config.GradingKernelManager.spare = False
    setup = Setup.of(cells, snapshot_prelude())

    async def kernel(code):
        manager = GradingKernelManager(config=config)
        manager.setup = setup
        await manager.start_kernel(cwd=str(work))
        outputs = manager.setup_outputs
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        printed = []
        await client.execute_interactive(code, timeout=60, output_hook=lambda message: printed.append(
            message["content"].get("text", message["content"].get("evalue", ""))))
        client.stop_channels()
        await manager.shutdown_kernel(now=False)
        return outputs, "".join(filter(None, printed))

    probe = "import os\nprint(made_in, made_in != os.getpid(), values.tolist(), np.mean([1.0, 3.0]))\n"
    first = asyncio.run(kernel(probe + "values[:] = 0\nnp.mean = None\nmade_in = 0"))
    second = asyncio.run(kernel(probe))
    outputs = [[{"output_type": "stream", "name": "stdout", "text": "set up\n"}],
               [{"output_type": "execute_result", "data": {"text/plain": "3.0"}, "metadata": {},
                 "execution_count": None}]]
    assert first == second  # the same snapshot's process made both (made_in), and nothing passed on
    assert first[0] == outputs and first[1].endswith(" True [1.0, 2.0] 2.0\n")


def test_set_up_cells_end_at_the_first_cell_that_is_not_the_instructors(course_template):
    source = nbformat.read(notebook_path(course_template, "source", "hidden_layers"), as_version=4)
    cells = {cell.metadata["nbgrader"]["grade_id"]: cell for cell in source.cells
             if "nbgrader" in cell.metadata}
    solution = nbformat.read(notebook_path(course_template, "solutions", "hidden_layers"), as_version=4)
    names = [cell.metadata["nbgrader"]["grade_id"] for _, cell in setup_cells(solution, cells)]
    assert names == ["setup", "data", "network"]
    solution.cells.insert(2, nbformat.v4.new_code_cell("x = 1"))  # a cell of the student's, early
    assert [cell.metadata["nbgrader"]["grade_id"] for _, cell in setup_cells(solution, cells)] == ["setup"]
    edited = edited_setup(course_template)  # a changed source is not the instructor's
    assert [cell.metadata["nbgrader"]["grade_id"] for _, cell in setup_cells(edited, cells)] == ["setup"]
