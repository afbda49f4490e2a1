"""The course directory: where it is, which assignments it holds, the kinds of cells of its notebooks, and
nbgrader's commands run in it."""

import ast
import copy
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning
from traitlets.config.loader import PyFileConfigLoader

EXAMPLE_STUDENT_PREFIX = "example-"
# One BLAS/OpenMP thread in every kernel that grades or checks a notebook: with two, an MLP fit that takes
# 2 s can take 40 s when the other core is busy, and results are the same. Parallelism comes from grading
# several submissions at once, never from threads inside one kernel.
ONE_BLAS_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def find_root(start=None):
    """The course directory: the nearest folder, from `start` upwards, that holds nbgrader_config.py."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "source").is_dir():
            return folder
    raise SystemExit(f"no course directory (nbgrader_config.py beside source/) at or above {start}")


def load_config(root):
    """The course's nbgrader configuration, as nbgrader's own commands read it."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def gradebook_url(root):
    """The address of the course's gradebook, as nbgrader's commands see it (CourseDirectory.db_url)."""
    return CourseDirectory(config=load_config(root), root=str(root)).db_url


def silence_known_warnings():
    """nbgrader 0.9 with SQLAlchemy 2 warns on every first write of a submission (a relationship set
    before the object joins the session); the rows are written as they should be."""
    warnings.filterwarnings("ignore", message="Object of type .* not in session", category=SAWarning)


def assignments(root):
    """Assignment names, in order: every folder of source/ that holds a notebook of its own name."""
    return sorted(p.parent.name for p in (root / "source").glob("*/*.ipynb") if p.stem == p.parent.name)


def grade_id(cell):
    """The cell's nbgrader id (graded, answer and read-only cells have one), or None."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


# The kinds of cells of the course's notebooks, from nbgrader's metadata (nbgrader.utils): an answer cell
# is the student's (code, or markdown for a written answer); a test cell is code graded by its outputs;
# read-only cells (setup, data, plots) are the instructor's, as is every test.

def is_test_cell(cell):
    """A test cell: code that earns its points when it runs without an error (nbgrader's autograder
    tests); never an answer cell, even a graded one (a TA grades those)."""
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def is_code_answer(cell):
    """An answer cell of code: where the student writes a function."""
    return cell.cell_type == "code" and utils.is_solution(cell)


def is_student_code(cell):
    """A code cell whose source comes from the student: an answer cell or a cell the student added."""
    return cell.cell_type == "code" and (utils.is_solution(cell) or not grade_id(cell))


def is_instructor_code(cell):
    """A code cell whose source is the instructor's: a test or a read-only cell (setup, data, plots)."""
    return cell.cell_type == "code" and bool(grade_id(cell)) and not utils.is_solution(cell)


def setup_cells(nb, instructor_cells):
    """[(index, cell)] of the notebook's set-up cells: its first code cells, up to the first that is not a
    read-only cell of the instructor's (with the instructor's source, plain Python, to be executed).
    The same for every student: they run once, in the snapshot from which the kernels are forked."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        source = instructor_cells.get(grade_id(cell))
        if (not is_instructor_code(cell) or is_test_cell(cell) or source is None
                or source.source != cell.source or "skip-execution" in source.metadata.get("tags", [])
                or not _plain_python(cell.source)):
            break
        found.append((index, cell))
    return found


def _plain_python(source):
    try:
        ast.parse(source)
    except SyntaxError:  # magics, shell escapes: IPython's, which only a kernel runs
        return False
    return True


def tests_by_answer(cells):
    """[(answer cell, [its test cells])] in notebook order: a test cell belongs to the answer cell, code or
    written, before it; test cells before any answer come first, under None."""
    groups = []
    for cell in cells:
        if utils.is_solution(cell):
            groups.append((cell, []))
        elif is_test_cell(cell):
            if not groups:
                groups.append((None, []))
            groups[-1][1].append(cell)
    return groups


def assignment_folder(coursedir, step, assignment, student="."):
    """An assignment's folder in one of nbgrader's steps ("source", "release", "submitted", "autograded",
    "feedback", "solution"), where the course's CourseDirectory (root, directory_structure) puts it."""
    return Path(coursedir.format_path(getattr(coursedir, f"{step}_directory"), student, assignment))


_instructor_notebooks = {}  # digest of a source notebook's bytes -> the notebook, read once per process


def read_instructor_notebook(path):
    """A notebook of source/ (trusted), parsed and validated once per process and content: grading reads
    it for every submission (a tenth of a second each time)."""
    data = Path(path).read_bytes()
    key = hashlib.sha256(data).digest()
    if key not in _instructor_notebooks:
        _instructor_notebooks[key] = nbformat.reads(data.decode("utf-8"), as_version=4)
    return copy.deepcopy(_instructor_notebooks[key])


def notebook_path(root, kind, assignment, student=None):
    """Path of an assignment's notebook in source/, release/, solutions/, submitted/ or autograded/."""
    folder = root / kind / student if student else root / kind
    return folder / assignment / f"{assignment}.ipynb"


def put_environment_on_path():
    """nbgrader runs `alembic` to create a gradebook: this Python's bin folder must be on PATH, also
    when the environment is not activated (as with `.venv/bin/course`)."""
    bin_folder = str(Path(sys.executable).parent)
    if bin_folder not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_folder, os.environ.get("PATH", "")])


_NBGRADER_MAIN = "import sys, coursetools; from nbgrader.apps.nbgraderapp import main; sys.exit(main())"


def nbgrader(root, *args, quiet=True, capture=False):
    """Run one nbgrader command in the course directory; raise if it fails. With capture=True, return
    what it printed (standard output and error)."""
    put_environment_on_path()
    # nbgrader's own command line, started through this package (see coursetools/__init__.py: 2 s less)
    command = [sys.executable, "-c", _NBGRADER_MAIN, *args]
    if quiet:
        command.append("--log-level=ERROR")  # nbgrader logs every step of every submission
    print("$ nbgrader", " ".join(args), flush=True)
    completed = subprocess.run(command, cwd=root, check=False, capture_output=capture, text=capture)
    if completed.returncode != 0:
        printed = f":\n{completed.stdout}{completed.stderr}" if capture else ""
        raise SystemExit(f"nbgrader {' '.join(args)} failed with exit code {completed.returncode}{printed}")
    return (completed.stdout or "") + (completed.stderr or "")


def export_grades(root):
    """grades.csv as `nbgrader export` writes it (its export plugin, as configured), in this process: an
    nbgrader command costs seconds of start-up. nbgrader's default CSV plugin asks the gradebook a few
    queries per student (42 s for 3000 students); CsvExport writes the same file from three."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import ExportApp
    from nbgrader.plugins import CsvExportPlugin

    from coursetools.scores import CsvExport

    config = load_config(root)
    coursedir = CourseDirectory(config=config, root=str(root))
    plugin_class = ExportApp(config=config).plugin_class
    if plugin_class is CsvExportPlugin:  # nbgrader's default: the same file, with a few queries
        plugin_class = CsvExport
    plugin = plugin_class(config=config)
    plugin.to = plugin.to or str(root / "grades.csv")
    with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
        plugin.export(gradebook)
    return Path(plugin.to)


def copy_course(root, target, parts=("nbgrader_config.py", "source", "examples")):
    """Copy what grading needs into `target`, a fresh course directory (checks.py links become files)."""
    for name in parts:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)


def read_tree(folder, follow_links=False, skip=()):
    """{relative path: bytes} of the regular files under `folder` (but those in `skip`), and the relative
    paths refused.

    A student's files are data: links, devices and other special files are refused, never followed
    (follow_links=True for the instructor's own files).
    """
    files, refused = {}, []
    for path in sorted(Path(folder).rglob("*")):
        mode = (path.stat() if follow_links else path.lstat()).st_mode
        relative = path.relative_to(folder).as_posix()
        if relative in skip:
            continue
        if stat.S_ISREG(mode):
            files[relative] = path.read_bytes()
        elif not stat.S_ISDIR(mode):
            refused.append(relative)
    return files, refused


def write_tree(folder, files, mode=None):
    """Write {relative path: bytes} under `folder` (each file with `mode`, when given)."""
    for relative, data in files.items():
        target = Path(folder) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if mode is not None:
            target.chmod(mode)
