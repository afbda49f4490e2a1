"""The course directory: where it is, which assignments it holds, and nbgrader's commands run in it."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

EXAMPLE_STUDENT_PREFIX = "example-"


def find_root(start=None):
    """The course directory: the nearest folder, from `start` upwards, that holds nbgrader_config.py."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "source").is_dir():
            return folder
    raise SystemExit(f"no course directory (nbgrader_config.py beside source/) at or above {start}")


def assignments(root):
    """Assignment names, in order: every folder of source/ that holds a notebook of its own name."""
    return sorted(p.parent.name for p in (root / "source").glob("*/*.ipynb") if p.stem == p.parent.name)


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


def nbgrader(root, *args, quiet=True):
    """Run one nbgrader command in the course directory; raise if it fails."""
    put_environment_on_path()
    # nbgrader 0.9 with SQLAlchemy 2 prints harmless SAWarnings on every gradebook write
    command = [sys.executable, "-W", "ignore:Object of type", "-m", "nbgrader", *args]
    if quiet:
        command.append("--log-level=ERROR")  # nbgrader warns of harmless things on every run
    print("$ nbgrader", " ".join(args), flush=True)
    completed = subprocess.run(command, cwd=root, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed with exit code {completed.returncode}")


def copy_course(root, target, parts=("nbgrader_config.py", "source", "examples")):
    """Copy what grading needs into `target`, a fresh course directory (checks.py links become files)."""
    for name in parts:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)


def read_tree(folder, follow_links=False):
    """{relative path: bytes} of the regular files under `folder`, and the problems met.

    A student's files are data: links, devices and other special files are refused, never followed
    (follow_links=True for the instructor's own files).
    """
    files, problems = {}, []
    for path in sorted(Path(folder).rglob("*")):
        mode = (path.stat() if follow_links else path.lstat()).st_mode
        relative = path.relative_to(folder).as_posix()
        if stat.S_ISREG(mode):
            files[relative] = path.read_bytes()
        elif not stat.S_ISDIR(mode):
            problems.append(f"{relative} is not a regular file (a link or a device): ignored")
    return files, problems


def write_tree(folder, files, mode=None):
    """Write {relative path: bytes} under `folder` (each file with `mode`, when given)."""
    for relative, data in files.items():
        target = Path(folder) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if mode is not None:
            target.chmod(mode)
