"""What of a submission is graded, decided in one place for both grading paths, and what grading finds
about the submission as handed in: its links, its files beyond the limits, its notebooks missing,
renamed or unreadable, its graded cells deleted, its own copies of the course's files.

A student's files are data. Links, devices and other special files are never followed nor read; files
beyond the course's SubmissionLimits are left out unread; a notebook among either is graded as the
untouched release (zero). `course grade` (batch.make_jobs) reads what is left into its job;
`nbgrader autograde` (its pre-convert hook, refuse_links) moves what is left out to
quarantine/ before nbgrader, which runs as root and follows links, copies the submission. Each finding
is worded here, once, for both.
"""

import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory

from coursetools.course import assignment_folder, grade_id, load_config, read_tree
from coursetools.findings import Finding
from coursetools.grading.limits import SubmissionLimits, printable

QUARANTINE = "quarantine"  # beside submitted/: what `nbgrader autograde` left out of submissions
_refused = {}  # (student, assignment) -> [Finding] of what the pre-convert hook found


@dataclass
class Intake:
    """What grading leaves out of one submission folder, decided before any of its files is read."""

    refused: list  # relative paths of the links, devices and other special files
    left_out: list  # [(relative path, size)] of the regular files beyond the limits
    releases: dict  # {notebook file name: path of its release}
    limits: SubmissionLimits

    @property
    def skipped(self):
        """Relative paths of every file left out."""
        return sorted({*self.refused, *(name for name, _ in self.left_out)})

    @property
    def as_release(self):
        """The notebooks left out, graded as their release instead."""
        return [name for name in self.skipped if name in self.releases]

    def findings(self, moved_to=""):
        """What TAs and the student read about the files left out; `moved_to`: where they were put."""
        where = f"moved to {moved_to}" if moved_to else "left out"
        found = [Finding("link", f"{printable(name)} is not a regular file (a link or a device): {where}",
                         student=f"{printable(name)} is a link or a special file: grading left it out.")
                 for name in self.refused]
        found += [Finding("link", f"{printable(name)} was a link: {where}, graded as the release",
                          student=f"{printable(name)} is a link, not a notebook: it was graded as the "
                                  "untouched release.")
                  for name in self.refused if name in self.releases]
        if self.left_out:
            found.append(self.limits.finding(self.left_out, self.releases))
        return found


def take(folder, releases, limits):
    """The Intake of the submission `folder`: its special files (not in folders that are links: those are
    not entered), and its regular files beyond `limits`, the notebooks of `releases` counted first."""
    folder = Path(folder)
    refused = []
    for path in sorted(folder.rglob("*")):  # rglob does not enter linked folders
        mode = path.lstat().st_mode
        if not stat.S_ISDIR(mode) and not stat.S_ISREG(mode):
            refused.append(path.relative_to(folder).as_posix())
    return Intake(refused, limits.left_out(folder, releases), releases, limits)


def read_submission(folder, releases, limits):
    """For `course grade`: ({relative path: bytes} of what is graded, a notebook left out replaced by its
    release; the Intake). Raises OSError when the folder changes while it is read."""
    intake = take(folder, releases, limits)
    files, refused = read_tree(folder, skip=set(intake.skipped))
    intake.refused += [name for name in refused if name not in intake.refused]  # became a link meanwhile
    files.update({name: Path(releases[name]).read_bytes() for name in intake.as_release})
    return files, intake


def quarantine_submission(folder, releases, limits, course_files, root, student, assignment):
    """For `nbgrader autograde`: move what is left out of the submission `folder` to a new folder
    quarantine/<student>/<assignment>/<time>/ (flat, unread: nothing is followed or replaced), put each
    notebook among it back as its release; return the findings (those of own_course_files too)."""
    intake = take(folder, releases, limits)
    if intake.skipped:
        kept = new_quarantine(root, student, assignment)
        for name in intake.skipped:
            os.rename(folder / name, kept / name.replace("/", "__"))
        for name in intake.as_release:
            (folder / name).write_bytes(Path(releases[name]).read_bytes())
    theirs = {name: (folder / name).read_bytes() for name in course_files
              if not name.endswith(".ipynb") and (folder / name).exists()
              and stat.S_ISREG((folder / name).lstat().st_mode)}
    return intake.findings(moved_to=f"{QUARANTINE}/") + own_course_files(theirs, course_files)


def new_quarantine(root, student, assignment):
    """A new, empty folder quarantine/<student>/<assignment>/<time-random>/, made without following links."""
    folder = Path(root)
    for part in (QUARANTINE, student, assignment):
        folder = folder / part
        folder.mkdir(exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():
            raise RuntimeError(f"{folder} is not a folder of the grader's")
    folder = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    folder.mkdir()
    return folder


def own_course_files(files, course_files):
    """A note for each file that the student handed in in place of one of the course's (checks.py) and that
    differs from it: grading uses the course's. `files` and `course_files`: {relative path: bytes}."""
    return [Finding("own-checks", f"handed in its own {name}: the course's copy replaces it",
                    student=f"Grading used the course's {name}, not the one you handed in.")
            for name, data in files.items()
            if name in course_files and not name.endswith(".ipynb") and data != course_files[name]]


def unreadable_submission(where, error):
    return Finding("unreadable-submission", f"{where} could not be read: {error}",
                   student="Your submission could not be read, so it scored zero: a TA will look at it.")


def notebook_findings(expected, submission):
    """Notebooks missing from the submission (saying what was found instead: a renamed copy), and submitted
    notebooks that nbformat cannot read. `submission`: {relative path: bytes}."""
    found = []
    submitted = {name for name in submission if name.endswith(".ipynb") and "/" not in name}
    others = sorted(submitted - {f"{name}.ipynb" for name in expected})
    for name in [f"{stem}.ipynb" for stem in expected]:
        if name not in submitted:
            instead = f"found {', '.join(others)}" if others else "found no notebook"
            found.append(Finding(
                "missing-notebook",
                f"{name} is missing (renamed or not handed in): {instead}; expected {name}; it scores zero",
                student=f"Your submission has no {name} ({instead}), so it scored zero. Hand in your "
                        f"notebook again, named {name}."))
            continue
        try:
            nbformat.reads(submission[name].decode("utf-8"), as_version=4)
        except Exception as error:  # any reason to be unreadable is the student's, and is reported
            kind = type(error).__name__
            found.append(Finding(
                "unreadable-notebook", f"{name} is not a readable notebook ({kind}): it scores zero",
                student=f"{name} could not be read as a notebook ({kind}), so it scored zero. Open it in "
                        "Jupyter, save it, and hand it in again."))
    return found


def drop_duplicated_grade_cells(folder):
    """Keep the first cell of every grade id in the notebooks of `folder`: nbgrader cannot grade a notebook
    with duplicated grade cells, and the first one is the cell that nbgrader restores from the gradebook
    anyway. Returns the findings."""
    found = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception:  # unreadable notebooks are reported by notebook_findings
            continue
        seen, kept = set(), []
        for cell in notebook.cells:
            name = grade_id(cell)
            if name and name in seen:
                found.append(Finding(
                    "duplicated-cell", f"{path.name}: a second cell {name!r} was removed before grading",
                    student=f"Your notebook had a second copy of the cell {name}: it was removed."))
                continue
            seen.add(name)
            kept.append(cell)
        if len(kept) < len(notebook.cells):
            notebook.cells = kept
            nbformat.write(notebook, path)
    return found


def cells_missing(names):
    """The graded cells of a notebook that were not graded (deleted by the student, or never run): they
    score zero."""
    listed = ", ".join(names[:5])
    return Finding("cells-missing", f"grade cells deleted or not run: {listed}",
                   student=f"These graded cells were missing from your notebook and score zero: {listed}.")


def refuse_links(assignment=None, student=None, notebooks=()):
    """nbgrader's pre-convert hook: before nbgrader copies a submission, move what grading leaves out of
    it (links, devices and other special files, the submission's folder itself included, and files beyond
    the SubmissionLimits) to a new folder quarantine/<student>/<assignment>/<time>/; a notebook among
    them is replaced by the untouched release, which scores zero (coursetools.grading.intake). If anything
    goes wrong, the whole submission is moved there instead: nbgrader then finds nothing to copy (it
    swallows a failing hook's exception). What it found is recorded by RestoreInstructorCells, which runs
    next in the same process."""
    if not notebooks:
        return
    # nbgrader passes the --student and assignment patterns ("*"); the submission's folder names them:
    # <root>/submitted/<student>/<assignment>
    folder = Path(notebooks[0]).absolute().parent
    root, student, assignment = folder.parents[2], folder.parent.name, folder.name
    try:
        for path in (folder.parent, folder):
            if path.is_symlink() or not path.is_dir():
                os.rename(path, new_quarantine(root, student, assignment) / path.name)
                return  # nothing is left to grade: nbgrader reports the notebooks as missing
        config = load_config(root)
        coursedir = CourseDirectory(config=config, root=str(root))
        release = assignment_folder(coursedir, "release", assignment)
        releases = {path.name: path for path in release.glob("*.ipynb")}
        course_files, _ = read_tree(assignment_folder(coursedir, "source", assignment), follow_links=True)
        _refused[(student, assignment)] = quarantine_submission(
            folder, releases, SubmissionLimits(config=config), course_files, root, student, assignment)
    except Exception:
        os.rename(folder, new_quarantine(root, student, assignment) / "submission")
        raise


def refused(student, assignment):
    """What the pre-convert hook found in a submission (once: for the step that records it)."""
    return list(_refused.pop((student, assignment), []))
