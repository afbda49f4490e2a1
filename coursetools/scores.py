"""Scores read from nbgrader's gradebook: one row per student and assignment."""

import pandas as pd
from nbgrader.api import Gradebook, MissingEntry

COLUMNS = ["student", "assignment", "auto", "auto_max", "manual", "manual_max", "score", "max_score",
           "needs_manual_grade"]


def score_table(db_url, students=None):
    """A DataFrame of COLUMNS, for every submission in the gradebook (or only for `students`).

    auto counts the points of the autograded test cells, manual those of the written answers that TAs
    grade by hand; score is nbgrader's total so far (a manual cell not yet graded counts as 0).
    """
    rows = []
    with Gradebook(db_url) as gradebook:
        for assignment in gradebook.assignments:
            for student in gradebook.students:
                if students is not None and student.id not in students:
                    continue
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    continue
                rows.append([
                    student.id, assignment.name,
                    submission.code_score, submission.max_code_score,
                    submission.written_score, submission.max_written_score,
                    submission.score, submission.max_score, submission.needs_manual_grade,
                ])
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["student", "assignment"], ignore_index=True)


def format_table(table):
    """The score table as text for the terminal."""
    if table.empty:
        return "(no submissions in the gradebook)"
    shown = pd.DataFrame({
        "student": table["student"],
        "assignment": table["assignment"],
        "auto": [f"{a:g}/{m:g}" for a, m in zip(table["auto"], table["auto_max"], strict=True)],
        "manual": [
            "pending" if pending else f"{s:g}/{m:g}"
            for s, m, pending in zip(table["manual"], table["manual_max"], table["needs_manual_grade"],
                                     strict=True)
        ],
        "total": [f"{s:g}/{m:g}" for s, m in zip(table["score"], table["max_score"], strict=True)],
    })
    return shown.to_string(index=False)
