"""Scores read from nbgrader's gradebook: every grade in one query, then a row per student and assignment.

pandas is imported by the functions that make the tables: `course grade` imports this module (for the
LMS's late penalties) long before, if ever, it needs a table."""

from nbgrader.api import (
    Assignment,
    BaseCell,
    Grade,
    Gradebook,
    Notebook,
    SubmittedAssignment,
    SubmittedNotebook,
)
from nbgrader.plugins import CsvExportPlugin

GRADE_COLUMNS = ["assignment", "student", "notebook", "cell", "cell_type", "score", "max_score",
                 "needs_manual_grade", "flagged"]
COLUMNS = ["student", "assignment", "auto", "auto_max", "manual", "manual_max", "score", "max_score",
           "needs_manual_grade", "manual_pending", "flagged"]


def grade_rows(db_url):
    """One row per grade of every submission (GRADE_COLUMNS): code cells are graded automatically,
    markdown cells (written answers) by hand. A score is nbgrader's: the manual score where a TA gave one,
    else the automatic one, plus extra credit."""
    import pandas as pd

    with Gradebook(db_url) as gradebook:
        rows = (
            gradebook.db.query(Assignment.name, SubmittedAssignment.student_id, Notebook.name, BaseCell.name,
                               Grade.cell_type, Grade.score, Grade.max_score, Grade.needs_manual_grade,
                               SubmittedNotebook.flagged)
            .select_from(Grade)
            .join(BaseCell, Grade.cell_id == BaseCell.id)
            .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
            .join(Notebook, SubmittedNotebook.notebook_id == Notebook.id)
            .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
            .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
            .all()
        )
    grades = pd.DataFrame([tuple(row) for row in rows], columns=GRADE_COLUMNS)
    return grades.astype({"score": float, "max_score": float, "needs_manual_grade": bool, "flagged": bool})


def score_table(db_url, students=None, grades=None):
    """A DataFrame of COLUMNS, for every submission in the gradebook (or only for `students`).

    auto counts the points of the autograded test cells, manual those of the written answers that TAs
    grade by hand; score is nbgrader's total so far (a manual cell not yet graded counts as 0, and
    manual_pending says so); needs_manual_grade is nbgrader's (a written answer to grade, or a test cell
    that a TA must look at); flagged: grading found something a TA must see.
    """
    import pandas as pd

    grades = grade_rows(db_url) if grades is None else grades
    if students is not None:
        grades = grades[grades["student"].isin(students)]
    if grades.empty:
        return pd.DataFrame(columns=COLUMNS)
    code = grades["cell_type"] == "code"
    table = (
        grades.assign(auto=grades["score"].where(code, 0.0), auto_max=grades["max_score"].where(code, 0.0),
                      manual=grades["score"].where(~code, 0.0),
                      manual_max=grades["max_score"].where(~code, 0.0),
                      manual_pending=grades["needs_manual_grade"] & ~code)
        .groupby(["student", "assignment"], as_index=False)
        .agg(auto=("auto", "sum"), auto_max=("auto_max", "sum"), manual=("manual", "sum"),
             manual_max=("manual_max", "sum"), needs_manual_grade=("needs_manual_grade", "any"),
             manual_pending=("manual_pending", "any"), flagged=("flagged", "any"))
    )
    table["score"] = table["auto"] + table["manual"]
    table["max_score"] = table["auto_max"] + table["manual_max"]
    return table[COLUMNS].sort_values(["student", "assignment"], ignore_index=True)


def format_table(table):
    """The score table as text for the terminal."""
    import pandas as pd

    if table.empty:
        return "(no submissions in the gradebook)"
    shown = pd.DataFrame({
        "student": table["student"],
        "assignment": table["assignment"],
        "auto": [f"{a:g}/{m:g}" for a, m in zip(table["auto"], table["auto_max"], strict=True)],
        "manual": [
            "pending" if pending else f"{s:g}/{m:g}"
            for s, m, pending in zip(table["manual"], table["manual_max"], table["manual_pending"],
                                     strict=True)
        ],
        "total": [f"{s:g}/{m:g}" for s, m in zip(table["score"], table["max_score"], strict=True)],
        "": ["flagged" if flagged else "" for flagged in table["flagged"]],
    })
    return shown.to_string(index=False)


class CsvExport(CsvExportPlugin):
    """nbgrader's CSV export, byte for byte, from three queries instead of a few per student: the
    assignments and the students in nbgrader's own order, and every submission's score at once."""

    def export(self, gradebook):
        keys = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                "raw_score", "late_submission_penalty", "score", "max_score"]
        submitted = {
            (assignment, student): (timestamp, score, penalty)
            for assignment, student, timestamp, score, penalty in gradebook.db.query(
                Assignment.name, SubmittedAssignment.student_id, SubmittedAssignment.timestamp,
                SubmittedAssignment.score, SubmittedAssignment.late_submission_penalty,
            ).join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
        }
        chosen_assignments = {str(name) for name in self.assignment}
        chosen_students = {str(name) for name in self.student}
        students = [(student.id, student.last_name, student.first_name, student.email)
                    for student in gradebook.students if not chosen_students or student.id in chosen_students]
        with open(self.to or "grades.csv", "w") as file:
            file.write(",".join(keys) + "\n")
            for assignment in gradebook.assignments:
                if chosen_assignments and assignment.name not in chosen_assignments:
                    continue
                for student, last_name, first_name, email in students:
                    timestamp, raw, penalty = submitted.get((assignment.name, student), ("", 0.0, 0.0))
                    row = [assignment.name, assignment.duedate, timestamp, student, last_name, first_name,
                           email, raw, penalty, max(0.0, raw - penalty) if (assignment.name, student)
                           in submitted else 0.0, assignment.max_score]
                    file.write(",".join("" if value is None else str(value) for value in row) + "\n")
