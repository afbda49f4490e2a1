"""`course collect ASSIGNMENT ZIPFILE`: the zip of an LMS's "download all submissions" filed as nbgrader
expects it, submitted/<student>/<assignment>/<notebook>.ipynb with timestamp.txt.

- Canvas: flat names `lastfirst_[LATE_]<user id>_<submission id>_<file name>[-N].ipynb`;
- Moodle: `<Full Name>_<participant id>_assignsubmission_file_/<file name>` (in folders or flat);
- a student's own zip inside the download is opened, and its notebooks are the student's.

The LMS id names the student through the roster (coursetools.lms); Moodle's full name is used when the
participant id is not in the roster and the name is one student's. The submission time is the zip entry's
(the downloads carry no other), in UTC; Canvas's LATE mark is kept in the submission's record. A renamed
copy (`activations-1.ipynb`, `activations (2).ipynb`) is the assignment's notebook, and so is a student's
only notebook under any name. What cannot be placed (an unknown id, no notebook, a second notebook, other
files) is reported, in grading_flags.csv too, and makes the exit code non-zero. Collecting again is safe:
an identical notebook is left as it is, a newer one replaces an older one, an older one is not taken.
"""

import hashlib
import io
import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from nbgrader.api import Gradebook, Student
from nbgrader.coursedir import CourseDirectory
from nbgrader.plugins import FileNameCollectorPlugin
from sqlalchemy import delete, insert, select

from coursetools.course import assignment_folder, gradebook_url, load_config
from coursetools.findings import read_flags, save_flags
from coursetools.grading.limits import SubmissionLimits
from coursetools.lms import LMS_IDS, LMS_SUBMISSIONS, apply_due_dates, tables

CANVAS = re.compile(r"(?P<name>[^_/]+)_(?P<late>LATE_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<file>.+)")
MOODLE = re.compile(r"(?P<name>[^/]+?)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)_"
                    r"/?(?P<file>.*)")
COPY_MARK = re.compile(r"(?:-\d+| ?\(\d+\)|-Copy\d*| - Copy(?: \(\d+\))?)$", re.IGNORECASE)
JUNK = re.compile(r"(^|/)(__MACOSX|\.ipynb_checkpoints)(/|$)|(^|/)\.DS_Store$")
COLLECT_PREFIX = "course collect: "  # reasons in grading_flags.csv that collecting wrote (and replaces)


@dataclass
class Found:
    """One file of the download, and whose it is."""

    where: str  # the entry's name in the download (and in the student's zip)
    system: str  # "canvas" or "moodle"
    lms_id: str  # Canvas user id or Moodle participant id
    lms_name: str  # the name the LMS gives the student
    file: str  # the student's own file name
    data: bytes
    time: datetime
    late: bool = False
    submission: str = ""  # Canvas submission id
    student: str = ""  # the roster's student id, once known


@dataclass
class Outcome:
    placed: dict  # student -> "new" | "replaced" | "unchanged" | "kept newer"
    problems: list  # (who, detail): a file not placed and why
    notes: list  # lines worth saying that need nobody


def collect(root, assignment, zip_path):
    """File the notebooks of an LMS's download for `assignment`; return an Outcome."""
    config = load_config(root)
    coursedir = CourseDirectory(config=config, root=str(root))
    limits = SubmissionLimits(config=config)
    expected = sorted(p.stem for p in assignment_folder(coursedir, "release", assignment).glob("*.ipynb"))
    if not expected:
        raise SystemExit(f"no release of {assignment}: run `course build {assignment}` first")
    problems, notes = [], []
    try:
        found = list(_read_download(Path(zip_path), limits, problems))
    except (zipfile.BadZipFile, OSError) as error:
        raise SystemExit(f"{zip_path}: not a zip file that can be read ({error})") from None
    _name_students(root, found, problems, notes)
    chosen = {}
    for item in found:
        if item.student:
            chosen.setdefault(item.student, []).append(item)
    placed = {}
    for student, items in sorted(chosen.items()):
        notebook = _choose(items, expected, student, problems, notes)
        if notebook is not None:
            placed[student] = (_place(coursedir, assignment, student, notebook, notes), notebook[0])
    _record(root, assignment, placed)
    _write_flags(root, assignment, problems)
    apply_due_dates(root)
    return Outcome({student: state for student, (state, _) in placed.items()}, problems, notes)


def _read_download(path, limits, problems):
    """Each file of the download (a student's zip opened), as Found without a student yet."""
    with zipfile.ZipFile(path) as download:
        for entry in download.infolist():
            name = entry.filename
            if entry.is_dir() or JUNK.search(name):
                continue
            base = PurePosixPath(name)
            canvas = CANVAS.fullmatch(base.name)
            moodle = MOODLE.fullmatch(name) or MOODLE.fullmatch(base.name)
            if moodle and moodle["file"]:
                item = Found(name, "moodle", moodle["participant"], moodle["name"],
                             PurePosixPath(moodle["file"]).name, b"", _time(entry))
            elif canvas:
                item = Found(name, "canvas", canvas["user"], canvas["name"], canvas["file"], b"",
                             _time(entry), late=bool(canvas["late"]), submission=canvas["submission"])
            else:
                problems.append(("", f"{name}: not a file name of a Canvas or Moodle download"))
                continue
            if entry.file_size > limits.max_bytes:
                problems.append(("", f"{name}: {entry.file_size} bytes, more than a submission may hold "
                                 f"({limits.max_bytes}): not read"))
                continue
            item.data = download.read(entry)
            if item.file.lower().endswith(".zip"):
                yield from _open_student_zip(item, limits, problems)
            else:
                yield item


def _open_student_zip(item, limits, problems):
    try:
        with zipfile.ZipFile(io.BytesIO(item.data)) as inner:
            entries = [e for e in inner.infolist() if not e.is_dir() and not JUNK.search(e.filename)]
            if sum(e.file_size for e in entries) > limits.max_bytes or len(entries) > limits.max_files:
                problems.append(("", f"{item.where}: the student's zip unpacks to more than a submission "
                                 "may hold: not opened"))
                return
            for entry in entries:
                yield Found(f"{item.where}/{entry.filename}", item.system, item.lms_id, item.lms_name,
                            PurePosixPath(entry.filename).name, inner.read(entry), item.time, item.late,
                            item.submission)
    except zipfile.BadZipFile:
        problems.append(("", f"{item.where}: a zip that cannot be opened"))


def _time(entry):
    return datetime(*entry.date_time, tzinfo=timezone.utc)


def _plain(name):
    return " ".join(unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower().split())


def _name_students(root, found, problems, notes):
    """Set each Found's student from the roster; an unknown id is a problem (reported once per id)."""
    with Gradebook(gradebook_url(root)) as gradebook:
        tables(gradebook.db)
        owners = {(system, value): student for student, system, value in gradebook.db.execute(
            select(LMS_IDS.c.student, LMS_IDS.c.system, LMS_IDS.c.value).where(
                LMS_IDS.c.kind.in_(["user_id", "participant_id"])))}
        names = {}
        for student in gradebook.db.query(Student):
            full = _plain(f"{student.first_name or ''} {student.last_name or ''}")
            names.setdefault(full, []).append(student.id)
    unknown = set()
    for item in found:
        item.student = owners.get((item.system, item.lms_id), "")
        if not item.student and item.system == "moodle" and len(names.get(_plain(item.lms_name), [])) == 1:
            item.student = names[_plain(item.lms_name)][0]
            notes.append(f"Moodle participant {item.lms_id} is not in the roster: {item.lms_name!r} is "
                         f"{item.student} by name")
        if not item.student and (item.system, item.lms_id) not in unknown:
            unknown.add((item.system, item.lms_id))
            what = "Canvas user" if item.system == "canvas" else "Moodle participant"
            problems.append((f"{item.system} {item.lms_id}", f"{item.where}: {what} {item.lms_id} "
                             f"({item.lms_name}) is not in the roster: run `course roster import` with the "
                             "LMS's roster, then collect again"))


def _notebook_name(file, expected):
    """The assignment notebook that a file is a copy of, or None."""
    stem, suffix = file.rsplit(".", 1) if "." in file else (file, "")
    if suffix.lower() != "ipynb":
        return None
    stem = COPY_MARK.sub("", stem.strip())
    for name in expected:
        if stem.lower() == name.lower():
            return name
    return None


def _choose(items, expected, student, problems, notes):
    """The notebook to file for one student, as (notebook name, Found), or None; what is left is named."""
    notebooks = [(item, _notebook_name(item.file, expected)) for item in items]
    named = [(item, name) for item, name in notebooks if name]
    others = [item for item in items if not item.file.lower().endswith(".ipynb")]
    if not named and len(expected) == 1:
        any_notebook = [item for item in items if item.file.lower().endswith(".ipynb")]
        if len(any_notebook) == 1:
            named = [(any_notebook[0], expected[0])]
            notes.append(f"{student}: handed in {any_notebook[0].file}, filed as {expected[0]}.ipynb")
    if not named:
        problems.append((student, f"no notebook for {student}: found "
                         f"{', '.join(item.where for item in items)}; expected {expected[0]}.ipynb"))
        return None
    newest = max(named, key=lambda pair: (pair[0].time, pair[0].submission, pair[0].file))
    for item, _ in named:
        if item is not newest[0]:
            problems.append((student, f"{item.where}: a second notebook of {student}; the newest, "
                             f"{newest[0].where}, is the one filed"))
    for item in others:
        problems.append((student, f"{item.where}: not a notebook, not filed"))
    return newest


def _place(coursedir, assignment, student, chosen, notes):
    """Write the chosen notebook and its timestamp.txt under submitted/; say what happened."""
    item, name = chosen
    folder = assignment_folder(coursedir, "submitted", assignment, student)
    target = folder / f"{name}.ipynb"
    timestamp = coursedir.get_existing_timestamp(str(folder))
    if target.exists() and target.read_bytes() == item.data:
        return "unchanged"
    if target.exists() and timestamp and timestamp > item.time.replace(tzinfo=None):  # nbgrader's: UTC
        notes.append(f"{student}: {item.where} is older than the notebook collected before "
                     f"({timestamp.isoformat(' ')}): kept that one")
        return "kept newer"
    state = "replaced" if folder.exists() else "new"
    staging = folder.with_name(f".{assignment}.collecting")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / f"{name}.ipynb").write_bytes(item.data)
    (staging / "timestamp.txt").write_text(item.time.isoformat(" "))
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)  # the student's folder is whole at every moment a grader may look
    return state


def _record(root, assignment, placed):
    """One row per filed submission in LMS_SUBMISSIONS: where it came from, and the LMS's late mark."""
    with Gradebook(gradebook_url(root)) as gradebook:
        session = gradebook.db
        tables(session)
        for student, (state, item) in placed.items():
            if state in ("unchanged", "kept newer"):
                continue
            session.execute(delete(LMS_SUBMISSIONS).where(LMS_SUBMISSIONS.c.assignment == assignment,
                                                          LMS_SUBMISSIONS.c.student == student))
            session.execute(insert(LMS_SUBMISSIONS).values(
                assignment=assignment, student=student, system=item.system, submission_id=item.submission,
                file_name=item.where, timestamp=item.time.isoformat(" "), late_mark=item.late,
                sha256=hashlib.sha256(item.data).hexdigest()))
        session.commit()


def late_marks(root, assignment):
    """{student: True} of the submissions of `assignment` that the LMS marked late."""
    with Gradebook(gradebook_url(root)) as gradebook:
        tables(gradebook.db)
        return {student: bool(late) for student, late in gradebook.db.execute(
            select(LMS_SUBMISSIONS.c.student, LMS_SUBMISSIONS.c.late_mark).where(
                LMS_SUBMISSIONS.c.assignment == assignment))}


def _write_flags(root, assignment, problems):
    """Replace this assignment's rows of the last collect in grading_flags.csv with this one's."""
    rows = {key: reason for key, reason in read_flags(root).items()
            if not (key[1] == assignment and reason.startswith(COLLECT_PREFIX))}
    by_who = {}
    for who, detail in problems:
        by_who.setdefault(who or "(download)", []).append(detail)
    rows.update({(who, assignment): COLLECT_PREFIX + "; ".join(details) for who, details in by_who.items()})
    save_flags(root, rows)


class CanvasCollector(FileNameCollectorPlugin):
    """`nbgrader zip_collect` for Canvas downloads: the student is the roster's owner of the Canvas user id
    in the file name, and a renamed copy (`activations-1.ipynb`) is the assignment's notebook."""

    def collect(self, submitted_file):
        match = CANVAS.fullmatch(Path(submitted_file).name)
        if not match:
            self.log.warning("not a Canvas download's file name: %s", submitted_file)
            return None
        coursedir = self.parent.coursedir
        with Gradebook(coursedir.db_url) as gradebook:
            tables(gradebook.db)
            student = gradebook.db.execute(select(LMS_IDS.c.student).where(
                LMS_IDS.c.system == "canvas", LMS_IDS.c.kind == "user_id",
                LMS_IDS.c.value == match["user"])).scalar()
        if not student:
            self.log.warning("Canvas user %s (%s) is not in the roster (course roster import): %s skipped",
                             match["user"], match["name"], submitted_file)
            return None
        release = Path(coursedir.format_path(coursedir.release_directory, ".", coursedir.assignment_id))
        name = _notebook_name(match["file"], sorted(p.stem for p in release.glob("*.ipynb")))
        return {"student_id": student, "file_id": f"{name}.ipynb" if name else match["file"]}
