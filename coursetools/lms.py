"""The course beside a learning management system (Canvas or Moodle): who the students are there, when each
assignment is due and what it is called there, the late penalty, and grades written back in the CSV that the
LMS's gradebook imports.

- The roster: `course roster import FILE.csv` reads the CSV that Canvas (gradebook export: Student, ID, SIS
  User ID, SIS Login ID, Section) or Moodle (participants: First name, Last name, ID number, Email address;
  or an assignment's grading worksheet: Identifier "Participant N", Full name, Email address) exports, or
  nbgrader's own student CSV (id, first_name, last_name, email). Students go to nbgrader's gradebook; their
  LMS ids to a table of ours in the same database (LMS_IDS), so that `course collect` can tell whose a file
  is and `course export` can say whose a grade is. A file with a bad row imports nothing.
- The course file, assignments.csv: one row per assignment with its due date (`due`, ISO 8601; UTC unless
  it says otherwise), its Canvas assignment id (`canvas_id`) and its Moodle grade item name (`moodle_item`).
  Due dates reach the gradebook on `course build`, `course collect` and `course grade`; a due date set with
  `nbgrader db assignment add --duedate` is left alone where the file has none.
- Grades back: `course export --to canvas|moodle FILE`.
"""

import csv
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path

from nbgrader.api import Assignment, Gradebook, Student, SubmittedAssignment
from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.utils import parse_utc
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
)
from traitlets import Float

from coursetools.course import EXAMPLE_STUDENT_PREFIX, assignments, gradebook_url
from coursetools.scores import score_table

COURSE_FILE = "assignments.csv"
COURSE_FILE_COLUMNS = ["assignment", "due", "canvas_id", "moodle_item"]

_metadata = MetaData()
# a student's ids in an LMS: ("canvas", "user_id" | "sis_user_id" | "sis_login_id" | "section"),
# ("moodle", "participant_id" | "id_number"); a Moodle participant id is one assignment's, so a student has
# one per assignment, all kept
LMS_IDS = Table("lms_ids", _metadata, Column("id", Integer, primary_key=True),
                Column("student", String(128), nullable=False, index=True),
                Column("system", String(16), nullable=False), Column("kind", String(32), nullable=False),
                Column("value", String(255), nullable=False),
                UniqueConstraint("system", "kind", "value", "student"))
# what `course collect` filed: where each submission came from, and the LMS's late mark
LMS_SUBMISSIONS = Table("lms_submissions", _metadata, Column("id", Integer, primary_key=True),
                        Column("assignment", String(128), nullable=False),
                        Column("student", String(128), nullable=False),
                        Column("system", String(16), nullable=False),
                        Column("submission_id", String(64), nullable=False),
                        Column("file_name", String(1024), nullable=False),
                        Column("timestamp", String(64), nullable=False),
                        Column("late_mark", Boolean, nullable=False),
                        Column("sha256", String(64), nullable=False),
                        UniqueConstraint("assignment", "student"))
UNIQUE_KINDS = {("canvas", "user_id"), ("canvas", "sis_user_id"), ("canvas", "sis_login_id"),
                ("moodle", "participant_id"), ("moodle", "id_number")}  # a section is shared, an id is not


def tables(session):
    """Make our tables where they are missing, in the session's transaction."""
    _metadata.create_all(session.connection(), checkfirst=True)


# ---------------------------------------------------------------------------------------------- roster


@dataclass
class RosterRow:
    line: int
    student: str  # the id the student gets (or has) in the gradebook
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    ids: dict = field(default_factory=dict)  # {(system, kind): value}


class RosterError(Exception):
    """A roster file that cannot be imported: every bad row, by line."""

    def __init__(self, path, problems):
        self.problems = problems
        super().__init__(f"{path}: nothing imported, {len(problems)} bad row"
                         f"{'' if len(problems) == 1 else 's'}:\n" + "\n".join(problems))


def _header(name):
    return re.sub(r"\s+", " ", name.replace("\ufeff", "")).strip().lower()


LAYOUTS = {  # the columns that tell each export apart, and what is read from it
    "canvas": {"student", "id", "sis user id", "sis login id"},
    "moodle worksheet": {"identifier", "full name", "email address"},
    "moodle": {"first name", "email address"},
    "nbgrader": {"id", "first_name", "last_name", "email"},
}


def read_roster(path):
    """(layout, [RosterRow]) of a roster CSV; raise RosterError listing every bad row."""
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.reader(text.splitlines())
    try:
        header = [_header(name) for name in next(reader)]
    except StopIteration:
        raise RosterError(path, ["line 1: the file is empty"]) from None
    layout = next((name for name, needed in LAYOUTS.items() if needed <= set(header)), None)
    if layout is None:
        raise RosterError(path, [f"line 1: not a roster that Canvas, Moodle or nbgrader exports (columns: "
                                 f"{', '.join(header)}); see {COURSE_FILE}'s documentation"])
    rows, problems = [], []
    for line, values in enumerate(reader, start=2):
        if not any(value.strip() for value in values):
            continue
        record = {name: value.strip() for name, value in zip(header, values, strict=False)}
        try:
            row = _roster_row(layout, record, line)
        except ValueError as error:
            problems.append(f"line {line}: {error}")
            continue
        if row is not None:
            rows.append(row)
    seen = {}
    for row in rows:
        for key in [("student", row.student), *[(k, v) for k, v in row.ids.items() if k in UNIQUE_KINDS]]:
            if key in seen:
                problems.append(f"line {row.line}: {key[0] if key[0] == 'student' else ' '.join(key[0])} "
                                f"{key[1]!r} is also on line {seen[key]}")
            seen.setdefault(key, row.line)
    if problems:
        raise RosterError(path, problems)
    return layout, rows


def _roster_row(layout, record, line):
    """A RosterRow from one CSV record, None for a row that is no student (Canvas's points row and test
    student); ValueError says what is wrong."""
    if layout == "canvas":
        name = record.get("student", "")
        if name.lower().endswith("points possible") or name == "Student, Test":
            return None
        user_id = record.get("id", "")
        if not user_id.isdigit():
            raise ValueError(f"Canvas user ID {user_id!r} is not a number")
        last, _, first = name.partition(",")
        ids = {("canvas", "user_id"): user_id}
        for column, kind in (("sis user id", "sis_user_id"), ("sis login id", "sis_login_id"),
                             ("section", "section")):
            if record.get(column):
                ids[("canvas", kind)] = record[column]
        student = record.get("sis login id") or record.get("sis user id") or f"canvas-{user_id}"
        return RosterRow(line, _student_id(student), first.strip(), last.strip(), "", ids)
    if layout == "moodle worksheet":
        match = re.fullmatch(r"\D*?(\d+)", record.get("identifier", ""))
        if not match:
            raise ValueError(f"identifier {record.get('identifier')!r} is not 'Participant <number>'")
        first, _, last = record.get("full name", "").partition(" ")
        ids = {("moodle", "participant_id"): match[1]}
        if record.get("id number"):
            ids[("moodle", "id_number")] = record["id number"]
        email = record.get("email address", "")
        student = record.get("id number") or email.partition("@")[0]
        if not student:
            raise ValueError("neither an ID number nor an e-mail address")
        return RosterRow(line, _student_id(student), first, last, email, ids)
    if layout == "moodle":
        email = record.get("email address", "")
        id_number = record.get("id number", "")
        student = id_number or email.partition("@")[0]
        if not student:
            raise ValueError("neither an ID number nor an e-mail address")
        ids = {("moodle", "id_number"): id_number} if id_number else {}
        return RosterRow(line, _student_id(student), record.get("first name", ""),
                         record.get("last name") or record.get("surname", ""), email, ids)
    if not record.get("id"):
        raise ValueError("no id")
    return RosterRow(line, _student_id(record["id"]), record.get("first_name", ""),
                     record.get("last_name", ""), record.get("email", ""))


def _student_id(text):
    """A student id that is a safe folder name (submitted/<id>/): letters, digits and . _ - @ +."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    student = re.sub(r"[^A-Za-z0-9._@+-]+", "-", plain).strip("-.")
    if not student:
        raise ValueError(f"{text!r} gives no usable student id")
    if student.startswith(EXAMPLE_STUDENT_PREFIX):
        raise ValueError(f"student id {student!r}: ids that start with {EXAMPLE_STUDENT_PREFIX!r} are "
                         "the bundled examples'")
    return student


def import_roster(root, path):
    """Record the roster's students in the gradebook with their LMS ids, all or nothing; return
    (layout, number of students, number of them new). A student known by one of the row's LMS ids or by
    e-mail keeps the id they have."""
    layout, rows = read_roster(path)
    with Gradebook(gradebook_url(root)) as gradebook:
        session = gradebook.db
        tables(session)
        owner = {(system, kind, value): student for student, system, kind, value in session.execute(
            select(LMS_IDS.c.student, LMS_IDS.c.system, LMS_IDS.c.kind, LMS_IDS.c.value))}
        known = {student.id: student for student in session.query(Student)}
        by_email = {student.email.lower(): student.id for student in known.values() if student.email}
        problems, new = [], 0
        for row in rows:
            holders = {owner[(*key, value)] for key, value in row.ids.items()
                       if key in UNIQUE_KINDS and (*key, value) in owner}
            if len(holders) > 1:
                problems.append(f"line {row.line}: its ids belong to {len(holders)} students already: "
                                f"{', '.join(sorted(holders))}")
                continue
            row.student = (holders.pop() if holders else by_email.get(row.email.lower()) if row.email
                           else None) or row.student
        if problems:
            raise RosterError(path, problems)
        try:
            for row in rows:
                student = known.get(row.student)
                if student is None:
                    student = Student(id=row.student)
                    session.add(student)
                    known[row.student] = student
                    new += 1
                student.first_name = row.first_name or student.first_name
                student.last_name = row.last_name or student.last_name
                student.email = row.email or student.email
                for (system, kind), value in row.ids.items():
                    if kind == "section":  # one section at a time: the newest roster's
                        session.execute(delete(LMS_IDS).where(
                            LMS_IDS.c.student == row.student, LMS_IDS.c.system == system,
                            LMS_IDS.c.kind == kind))
                    elif (system, kind, value) in owner:
                        continue
                    session.execute(insert(LMS_IDS).values(student=row.student, system=system, kind=kind,
                                                           value=value))
            session.commit()
        except Exception:
            session.rollback()
            raise
    return layout, len(rows), new


def lms_ids(root):
    """{student: {(system, kind): value}} of the roster (for a Moodle participant id: the newest)."""
    with Gradebook(gradebook_url(root)) as gradebook:
        tables(gradebook.db)
        rows = gradebook.db.execute(select(LMS_IDS.c.student, LMS_IDS.c.system, LMS_IDS.c.kind,
                                           LMS_IDS.c.value).order_by(LMS_IDS.c.id)).all()
    ids = {}
    for student, system, kind, value in rows:
        ids.setdefault(student, {})[(system, kind)] = value
    return ids


# ---------------------------------------------------------------------------------- the course file


def read_course_file(root):
    """{assignment: {"due": datetime or None, "canvas_id": str, "moodle_item": str}} of assignments.csv
    ({} without one); SystemExit names every bad row."""
    path = root / COURSE_FILE
    if not path.exists():
        return {}
    known, rows, problems = set(assignments(root)), {}, []
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        missing = {"assignment"} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"{COURSE_FILE}: no 'assignment' column (expected: "
                             f"{', '.join(COURSE_FILE_COLUMNS)})")
        for line, record in enumerate(reader, start=2):
            name = (record.get("assignment") or "").strip()
            if not name:
                continue
            if name not in known:
                problems.append(f"line {line}: {name!r} is no assignment of source/")
                continue
            due = (record.get("due") or "").strip()
            try:
                due = parse_utc(due) if due else None
            except (ValueError, OverflowError):
                problems.append(f"line {line}: due {due!r} is not a date (e.g. 2026-10-01 23:59 or "
                                "2026-10-01T23:59:00+02:00)")
                continue
            rows[name] = {"due": due, "canvas_id": (record.get("canvas_id") or "").strip(),
                          "moodle_item": (record.get("moodle_item") or "").strip() or name}
    if problems:
        raise SystemExit(f"{COURSE_FILE}: " + "; ".join(problems))
    return rows


def apply_due_dates(root):
    """Give the gradebook's assignments the due dates of assignments.csv (released assignments only)."""
    due = {name: row["due"] for name, row in read_course_file(root).items() if row["due"]}
    if not due:
        return
    with Gradebook(gradebook_url(root)) as gradebook:
        for assignment in gradebook.db.query(Assignment).filter(Assignment.name.in_(due)):
            if assignment.duedate != due[assignment.name]:
                assignment.duedate = due[assignment.name]
        gradebook.db.commit()


class LatePenalty(LateSubmissionPlugin):
    """A late notebook loses a share of its score for every started day past the due date (nbgrader's own
    methods are none and zero)."""

    percent_per_day = Float(10.0, help="Percent of the notebook's score lost per started day late "
                            "(100: late work scores zero)").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        days = ceil(total_seconds_late / 86400) if total_seconds_late > 0 else 0
        return min(score, score * self.percent_per_day / 100 * days)


# ------------------------------------------------------------------------------------- grades back


@dataclass
class Export:
    path: Path
    students: int
    held_back: list  # lines: a submission left blank (pending hand-grading or flagged), and why
    not_in_roster: list  # students of the gradebook that the LMS cannot know: left out


def export(root, to, path, allow_pending=False):
    """Write the gradebook's scores (late penalty applied) as the CSV that `to` ("canvas" or "moodle")
    imports: one row per student of the roster, one column per assignment. Example students are left out;
    a submission with hand-graded points pending or a flag is left blank unless allow_pending."""
    course = read_course_file(root)
    ids = lms_ids(root)
    url = gradebook_url(root)
    table = score_table(url)
    with Gradebook(url) as gradebook:
        maxima = {a.name: a.max_score for a in gradebook.assignments}
        names = [name for name in maxima if name in set(table["assignment"])]  # handed in: a column
        students = {s.id: s for s in gradebook.students}
        final = {(a, s): (score, penalty) for a, s, score, penalty in gradebook.db.query(
            Assignment.name, SubmittedAssignment.student_id, SubmittedAssignment.score,
            SubmittedAssignment.late_submission_penalty).join(
                Assignment, SubmittedAssignment.assignment_id == Assignment.id)}
        students = {sid: (s.first_name or "", s.last_name or "", s.email or "")
                    for sid, s in students.items()}
    if to == "canvas":
        columns = [(name, f"{name} ({course[name]['canvas_id']})") for name in names
                   if course.get(name, {}).get("canvas_id")]
        without = [name for name in names if not course.get(name, {}).get("canvas_id")]
        if without:
            print(f"no Canvas assignment id in {COURSE_FILE} for {', '.join(without)}: not exported",
                  file=sys.stderr)
        key = ("canvas", "user_id")
    else:
        columns = [(name, course.get(name, {}).get("moodle_item") or name) for name in names]
        key = None
    in_lms = [s for s in students if not s.startswith(EXAMPLE_STUDENT_PREFIX) and (
        ids.get(s, {}).get(key) if key else ids.get(s, {}).get(("moodle", "id_number")) or students[s][2])]
    not_in_roster = sorted(s for s in set(table["student"]) - set(in_lms)
                           if not s.startswith(EXAMPLE_STUDENT_PREFIX))
    state = {(row.student, row.assignment): row for row in table.itertuples()}
    held_back = []

    def points(student, name):
        row = state.get((student, name))
        if row is None:
            return ""  # not handed in: left to the LMS's policy for missing work
        why = "flagged" if row.flagged else "hand-graded points pending" if row.manual_pending else ""
        if why and not allow_pending:
            held_back.append(f"{student} / {name}: {why}")
            return ""
        score, penalty = final[(name, student)]
        return f"{max(0.0, (score or 0.0) - (penalty or 0.0)):g}"

    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        if to == "canvas":
            writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                             *[header for _, header in columns]])
            writer.writerow(["    Points Possible", "", "", "", "",
                             *[f"{maxima[name]:g}" for name, _ in columns]])
            for student in sorted(in_lms, key=lambda s: (students[s][1].lower(), students[s][0].lower(), s)):
                first, last, _ = students[student]
                own = ids[student]
                writer.writerow([f"{last}, {first}" if last else first or student, own[key],
                                 *[own.get(("canvas", kind), "")
                                   for kind in ("sis_user_id", "sis_login_id", "section")],
                                 *[points(student, name) for name, _ in columns]])
        else:
            writer.writerow(["ID number", "Email address", "First name", "Last name",
                             *[header for _, header in columns]])
            for student in sorted(in_lms):
                first, last, email = students[student]
                writer.writerow([ids.get(student, {}).get(("moodle", "id_number"), ""), email, first, last,
                                 *[points(student, name) for name, _ in columns]])
    return Export(path, len(in_lms), held_back, not_in_roster)

