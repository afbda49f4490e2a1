"""The class report for TAs: class_report.html and class_report.csv, next to nbgrader's grades.csv.

What it shows: the score distribution of each assignment (a plot), the pass rate of every test cell
with its most common failure messages, the submissions flagged for a TA (grading_flags.csv) and the
written answers waiting to be graded by hand.
"""

import base64
import csv
import html
import io
from collections import Counter
from datetime import datetime

import matplotlib

matplotlib.use("Agg")  # files only: no screen
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
from nbgrader.api import Gradebook  # noqa: E402

from coursetools.batch import FLAGS_FILE  # noqa: E402
from coursetools.course import notebook_path  # noqa: E402


def collect(root):
    """(submissions, cells, manual) DataFrames read from the gradebook and the autograded notebooks."""
    submissions, cells, manual = [], [], []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for assignment in gradebook.assignments:
            for submission in assignment.submissions:
                student = submission.student.id
                submissions.append({"assignment": assignment.name, "student": student,
                                    "auto": submission.code_score, "auto_max": submission.max_code_score})
                messages = failure_messages(root, assignment.name, student)
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        if grade.cell.cell_type == "code":
                            cells.append({"assignment": assignment.name, "cell": grade.name,
                                          "points": grade.max_score, "passed": grade.score >= grade.max_score,
                                          "message": messages.get(grade.name, "")})
                        elif grade.needs_manual_grade:
                            manual.append({"assignment": assignment.name, "student": student,
                                           "cell": grade.name, "points": grade.max_score})
    return pd.DataFrame(submissions), pd.DataFrame(cells), pd.DataFrame(manual)


def failure_messages(root, assignment, student):
    """{test cell: its failure message} of one autograded notebook."""
    path = notebook_path(root, "autograded", assignment, student)
    if not path.exists():
        return {}
    messages = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if errors:
                message = f"{errors[-1].ename}: {errors[-1].evalue}"
                messages[cell.metadata["nbgrader"]["grade_id"]] = message[:200]
    return messages


def cell_table(cells):
    """One row per test cell: points, pass rate and the three most common failure messages."""
    rows = []
    for (assignment, cell), group in cells.groupby(["assignment", "cell"], sort=False):
        common = Counter(m for m in group["message"] if m).most_common(3)
        rows.append({"assignment": assignment, "cell": cell, "points": group["points"].iloc[0],
                     "submissions": len(group), "passed": int(group["passed"].sum()),
                     "pass_rate": round(group["passed"].mean(), 3),
                     "most_common_failures": " | ".join(f"{count}× {message}" for message, count in common)})
    return pd.DataFrame(rows)


def distribution_png(submissions):
    """The score distribution, one histogram per assignment, as PNG bytes."""
    names = sorted(submissions["assignment"].unique())
    figure, axes = plt.subplots(1, max(len(names), 1), figsize=(3.2 * max(len(names), 1), 2.8), squeeze=False)
    for axis, name in zip(axes[0], names, strict=False):
        own = submissions[submissions["assignment"] == name]
        percent = 100 * own["auto"] / own["auto_max"].where(own["auto_max"] > 0, 1)
        axis.hist(percent, bins=range(0, 105, 10), color="#4c72b0", edgecolor="white")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("automatic score (%)", fontsize=8)
    axes[0][0].set_ylabel("submissions", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def read_flags(root):
    path = root / FLAGS_FILE
    if not path.exists():
        return pd.DataFrame(columns=["student", "assignment", "reason"])
    with path.open() as file:
        return pd.DataFrame(list(csv.DictReader(file)), columns=["student", "assignment", "reason"])


def write_report(root):
    """Write class_report.html and class_report.csv; return the HTML path."""
    submissions, cells, manual = collect(root)
    if submissions.empty:
        cells_summary = pd.DataFrame(columns=["assignment", "cell", "points", "submissions", "passed",
                                              "pass_rate", "most_common_failures"])
        image = ""
    else:
        cells_summary = cell_table(cells)
        image = base64.b64encode(distribution_png(submissions)).decode()
    cells_summary.to_csv(root / "class_report.csv", index=False)
    flags = read_flags(root)
    if manual.empty:
        manual = pd.DataFrame(columns=["assignment", "student", "cell", "points"])
    sections = [
        f"<h1>Class report</h1><p>{len(submissions)} submissions; generated "
        f"{html.escape(datetime.now().isoformat(timespec='seconds'))}.</p>",
        "<h2>Score distribution</h2>",
        f'<img id="distribution" alt="Histogram of automatic scores per assignment" '
        f'src="data:image/png;base64,{image}">' if image else "<p>No submissions yet.</p>",
        "<h2>Pass rate per test cell</h2>",
        cells_summary.to_html(index=False, table_id="cells", border=0),
        f"<h2>Flagged submissions ({len(flags)})</h2>",
        flags.to_html(index=False, table_id="flagged", border=0),
        f"<h2>Waiting for manual grading ({len(manual)})</h2>",
        manual.to_html(index=False, table_id="manual", border=0),
    ]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Class report</title><style>"
            "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:90%}"
            "td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
            "</style></head><body>" + "\n".join(sections) + "</body></html>")
    path = root / "class_report.html"
    path.write_text(page, encoding="utf-8")
    return path
