"""The class report for TAs: class_report.html and class_report.csv, and grades_detail.csv beside nbgrader's
grades.csv.

The page answers a TA's questions in this order: who needs attention (flagged submissions with their
reason, then the lowest scorers, each linked to their feedback), which questions the class struggled with
(test cells sorted by pass rate, with their most common failure messages, whole), a students × questions
heat map, the score distribution of each assignment, the similarity report of each assignment (pairs of
students whose answers are alike, coursetools.similarity), the written answers waiting to be graded by hand,
and every student's scores. Example students (example-*) are left out of every statistic and listed apart
(unless the class has no other student yet, as after `course demo`: then the page says it shows them).
It fits a 1280 px window. class_report.csv holds the per-question table; grades_detail.csv one row per
submission, with written answers not yet graded shown as pending and flagged submissions marked.
"""

import base64
import io
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no screen
import jinja2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from nbgrader.api import Gradebook  # noqa: E402

from coursetools import findings, messages, similarity  # noqa: E402
from coursetools.course import EXAMPLE_STUDENT_PREFIX, gradebook_url  # noqa: E402
from coursetools.scores import grade_rows, score_table  # noqa: E402

LOWEST = 10  # students in "lowest scores"
HEAT_MAP_STUDENTS = 60  # rows of the heat map: the lowest scorers
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class ClassData:
    """What the report shows, read from the gradebook (nbgrader's tables and coursetools.messages) and
    grading_flags.csv."""

    grades: pd.DataFrame  # scores.grade_rows, with the failure "message" of every failed test cell
    scores: pd.DataFrame  # scores.score_table, with "reason" (flagged), "notes" and "example"
    strays: pd.DataFrame  # student, assignment, reason: what was handed in but could not be graded
    examples_only: bool  # no student but the examples: statistics are of the examples


def collect(root):
    db_url = gradebook_url(root)
    grades = grade_rows(db_url)
    scores = score_table(None, grades=grades)
    with Gradebook(db_url) as gradebook:
        failed, recorded = messages.read(gradebook.db)
    keys = ["assignment", "student", "notebook", "cell"]
    # one message per cell: two graders of the same submission at once may both have written theirs
    failed = failed.drop_duplicates(keys, keep="last")
    grades = grades.merge(failed, on=keys, how="left", validate="one_to_one")
    grades["message"] = grades["message"].fillna("")
    found = {key: messages.as_findings(rows) for key, rows in recorded.groupby(["student", "assignment"])}
    flags = findings.read_flags(root)
    submissions = list(zip(scores["student"], scores["assignment"], strict=True))
    scores["reason"] = [
        flags.get(key) or findings.reason(found.get(key, [])) or "flagged in the gradebook" if flagged else ""
        for key, flagged in zip(submissions, scores["flagged"], strict=True)
    ]
    scores["notes"] = [findings.notes(found.get(key, [])) for key in submissions]
    scores["example"] = scores["student"].str.startswith(EXAMPLE_STUDENT_PREFIX)
    graded = set(submissions)
    strays = pd.DataFrame([(student, assignment, reason) for (student, assignment), reason in flags.items()
                           if (student, assignment) not in graded],
                          columns=["student", "assignment", "reason"])
    return ClassData(grades, scores, strays, examples_only=bool(scores["example"].all()))


def counted(data, frame):
    """The rows of `frame` that statistics count: not the examples, unless there is nobody else."""
    return frame if data.examples_only else frame[~frame["student"].str.startswith(EXAMPLE_STUDENT_PREFIX)]


def question_table(data):
    """One row per test cell, hardest first: points, submissions whose test ran, passed, pass rate among
    them, submissions whose test did not run (not_graded: the notebook could not be graded, see the
    flagged submissions) and the three most common failure messages of the tests that ran."""
    tests = counted(data, data.grades[data.grades["cell_type"] == "code"])
    order = {cell: index for index, cell in enumerate(dict.fromkeys(data.grades["cell"]))}
    rows = []
    for (assignment, cell), group in tests.groupby(["assignment", "cell"], sort=False):
        ran = group[group["message"] != messages.NOT_GRADED]
        passed = ran["score"] >= ran["max_score"]
        common = Counter(message for message in ran["message"] if message).most_common(3)
        rows.append({"assignment": assignment, "cell": cell, "points": group["max_score"].iloc[0],
                     "submissions": len(ran), "passed": int(passed.sum()),
                     "pass_rate": round(float(passed.mean()), 3) if len(ran) else float("nan"),
                     "not_graded": len(group) - len(ran),
                     "most_common_failures": " | ".join(f"{n}× {message}" for message, n in common),
                     "failures": common, "order": order.get(cell, 0)})
    columns = ["assignment", "cell", "points", "submissions", "passed", "pass_rate", "not_graded",
               "most_common_failures"]
    if not rows:
        return pd.DataFrame(columns=[*columns, "failures"])
    table = pd.DataFrame(rows).sort_values(["pass_rate", "assignment", "order"], ignore_index=True,
                                           na_position="last")
    return table[[*columns, "failures"]]


def student_table(data, scores):
    """One row per student: automatic points over every assignment handed in, lowest first."""
    if scores.empty:
        return pd.DataFrame(columns=["student", "auto", "auto_max", "percent", "submitted", "flagged"])
    table = scores.groupby("student", as_index=False).agg(
        auto=("auto", "sum"), auto_max=("auto_max", "sum"), submitted=("assignment", "count"),
        flagged=("flagged", "any"))
    table["percent"] = 100 * table["auto"] / table["auto_max"].where(table["auto_max"] > 0, 1)
    return table.sort_values(["percent", "student"], ignore_index=True)


def heat_map_png(data, students):
    """Students (rows, lowest first) × test cells (columns, in notebook order): share of each cell's
    points, as PNG bytes; blank where nothing was handed in."""
    tests = data.grades[(data.grades["cell_type"] == "code") & data.grades["student"].isin(students)]
    cells = list(dict.fromkeys(zip(tests["assignment"], tests["cell"], strict=True)))
    cells.sort(key=lambda key: key[0])  # grouped by assignment, in notebook order within each
    shares = tests.assign(share=tests["score"] / tests["max_score"].where(tests["max_score"] > 0, 1))
    matrix = (shares.pivot_table(index="student", columns=["assignment", "cell"], values="share")
              .reindex(index=students, columns=pd.MultiIndex.from_tuples(cells)))
    width = min(12.5, 2.5 + 0.16 * len(cells))
    figure, axis = plt.subplots(figsize=(width, 1.6 + 0.17 * len(students)))
    colours = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#eeeeee")
    image = axis.imshow(np.ma.masked_invalid(matrix.to_numpy(dtype=float)), cmap=colours, vmin=0, vmax=1,
                        aspect="auto", interpolation="nearest")
    axis.set_yticks(range(len(students)), students, fontsize=7)
    axis.set_xticks(range(len(cells)), [cell for _, cell in cells], rotation=90, fontsize=6)
    for index in range(1, len(cells)):
        if cells[index][0] != cells[index - 1][0]:
            axis.axvline(index - 0.5, color="black", linewidth=1)
    figure.colorbar(image, ax=axis, fraction=0.02, pad=0.01, label="share of the cell's points")
    figure.tight_layout()
    return _png(figure)


def distribution_png(scores):
    """The distribution of automatic scores, one histogram per assignment, three to a row, as PNG bytes."""
    names = sorted(scores["assignment"].unique())
    columns = min(3, max(len(names), 1))
    rows = -(-max(len(names), 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.9 * columns, 2.7 * rows), squeeze=False)
    for axis in axes.flat[len(names):]:
        axis.axis("off")
    for axis, name in zip(axes.flat, names, strict=False):
        own = scores[scores["assignment"] == name]
        percent = 100 * own["auto"] / own["auto_max"].where(own["auto_max"] > 0, 1)
        axis.hist(percent, bins=range(0, 105, 10), color="#4c72b0", edgecolor="white")
        axis.set_title(f"{name} ({len(own)})", fontsize=9)
        axis.set_xlabel("automatic score (%)", fontsize=8)
        axis.set_ylabel("submissions", fontsize=8)
    figure.tight_layout()
    return _png(figure)


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def feedback_links(root):
    """{(student, assignment): [(label, relative URL)]} of the feedback pages and autograded notebooks that
    exist (one pass over each folder, however many students)."""
    links = {}
    for kind, label, suffix in (("feedback", "feedback", "html"), ("autograded", "notebook", "ipynb")):
        for path in sorted((root / kind).glob(f"*/*/*.{suffix}")):
            key = (path.parent.parent.name, path.parent.name)
            links.setdefault(key, []).append((label, urllib.parse.quote(path.relative_to(root).as_posix())))
    return links


def grades_detail(data):
    """One row per submission: written answers not graded yet are "pending", flagged ones are marked."""
    scores = data.scores
    return pd.DataFrame({
        "student": scores["student"], "assignment": scores["assignment"],
        "auto": scores["auto"], "auto_max": scores["auto_max"],
        "manual": [("pending" if pending else f"{manual:g}")
                   for manual, pending in zip(scores["manual"], scores["manual_pending"], strict=True)],
        "manual_max": scores["manual_max"], "score_so_far": scores["score"], "max_score": scores["max_score"],
        "status": ["flagged" if flagged else "pending" if pending else "complete"
                   for flagged, pending in zip(scores["flagged"], scores["manual_pending"], strict=True)],
        "reason": scores["reason"],
    })


def write_report(root):
    """Write class_report.html, class_report.csv and grades_detail.csv; return the HTML path."""
    data = collect(root)
    scores = counted(data, data.scores)
    questions = question_table(data)
    questions.drop(columns="failures").to_csv(root / "class_report.csv", index=False)
    grades_detail(data).to_csv(root / "grades_detail.csv", index=False)
    students = student_table(data, scores)
    heat_students = list(students["student"][:HEAT_MAP_STUDENTS])
    flagged = counted(data, data.scores[data.scores["flagged"]])
    written = data.grades[(data.grades["cell_type"] != "code") & data.grades["needs_manual_grade"]]
    manual = counted(data, written)
    assignments = sorted(data.scores["assignment"].unique())
    submissions = {(row.student, row.assignment): row for row in data.scores.itertuples()}
    links = feedback_links(root)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True)
    page = environment.get_template("class_report.html.j2").render(
        generated=datetime.now().isoformat(timespec="seconds"),
        data=data, scores=scores, questions=questions, students=students, flagged=flagged,
        lowest=students.head(LOWEST), manual=manual, assignments=assignments, submissions=submissions,
        examples=data.scores[data.scores["example"]] if not data.examples_only else data.scores.iloc[0:0],
        heat_map=heat_map_png(data, heat_students) if heat_students else "", heat_students=len(heat_students),
        distribution=distribution_png(scores) if not scores.empty else "",
        links=lambda student, assignment: links.get((student, assignment), []),
        similar=similarity.summary(root, assignments),
        example_prefix=EXAMPLE_STUDENT_PREFIX,
    )
    path = root / "class_report.html"
    path.write_text(page, encoding="utf-8")
    return path
