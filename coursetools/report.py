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
import itertools
import math
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from nbgrader.api import Gradebook

from coursetools import findings, messages, similarity
from coursetools.course import EXAMPLE_STUDENT_PREFIX, gradebook_url
from coursetools.scores import grade_rows, score_table

LOWEST = 10  # students in "lowest scores"
HEAT_MAP_STUDENTS = 60  # rows of the heat map: the lowest scorers
TEMPLATES = Path(__file__).parent / "templates"
# The plots are SVG written with templates (templates/*.svg.j2): a tenth of a second less than matplotlib's
# PNG per report, and no plotting library to import. The heat map's colours are matplotlib's RdYlGn,
# ColorBrewer's 11 colours with straight lines between them, from red (no points) to green (all).
RED_YELLOW_GREEN = ["#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#ffffbf", "#d9ef8b", "#a6d96a",
                    "#66bd63", "#1a9850", "#006837"]
NOT_HANDED_IN = "#eeeeee"


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


def heat_map_svg(data, students):
    """Students (rows, lowest first) × test cells (columns, in notebook order): share of each cell's
    points, as SVG text; blank where nothing was handed in."""
    tests = data.grades[(data.grades["cell_type"] == "code") & data.grades["student"].isin(students)]
    cells = list(dict.fromkeys(zip(tests["assignment"], tests["cell"], strict=True)))
    cells.sort(key=lambda key: key[0])  # grouped by assignment, in notebook order within each
    shares = tests.assign(share=tests["score"] / tests["max_score"].where(tests["max_score"] > 0, 1))
    matrix = (shares.pivot_table(index="student", columns=["assignment", "cell"], values="share")
              .reindex(index=students, columns=pd.MultiIndex.from_tuples(cells)))
    left = 12 + 5.5 * max(len(student) for student in students)
    cell_width = max(6.0, min(16.0, (1080 - left) / max(len(cells), 1)))
    cell_height = 14
    grid_width, grid_height = cell_width * len(cells), cell_height * len(students)
    rows = [{"student": student, "colours": [share_colour(share) for share in values]}
            for student, values in zip(students, matrix.to_numpy(dtype=float), strict=True)]
    bottom = 10 + 5 * max((len(cell) for _, cell in cells), default=0)
    bar_height = max(grid_height, 140)  # the colour bar: as tall as the grid, and its label
    page = _template("heat_map.svg.j2").render(
        rows=rows, cells=[cell for _, cell in cells], left=left, top=8, cell_width=cell_width,
        cell_height=cell_height, grid_width=grid_width, grid_height=grid_height,
        separators=[left + index * cell_width for index in range(1, len(cells))
                    if cells[index][0] != cells[index - 1][0]],
        bar_x=left + grid_width + 12, bar_height=bar_height, width=round(left + grid_width + 70),
        height=round(max(8 + grid_height + bottom, 18 + bar_height)),
        gradient=[(index / 10, colour) for index, colour in enumerate(RED_YELLOW_GREEN)])
    return _data(page)


def share_colour(share):
    """The heat map's colour of a share of a cell's points (0 to 1; NaN: not handed in)."""
    if math.isnan(share):
        return NOT_HANDED_IN
    position = min(max(share, 0.0), 1.0) * (len(RED_YELLOW_GREEN) - 1)
    index = min(int(position), len(RED_YELLOW_GREEN) - 2)
    low, high = (_rgb(colour) for colour in RED_YELLOW_GREEN[index:index + 2])
    mixed = (round(a + (b - a) * (position - index)) for a, b in zip(low, high, strict=True))
    return "#" + "".join(f"{value:02x}" for value in mixed)


def _rgb(colour):
    return [int(colour[start:start + 2], 16) for start in (1, 3, 5)]


PLOT_WIDTH, PLOT_HEIGHT = 290, 170  # one histogram's axes, in pixels


def distribution_svg(scores):
    """The distribution of automatic scores, one histogram per assignment, three to a row, as SVG text."""
    names = sorted(scores["assignment"].unique())
    columns = min(3, max(len(names), 1))
    panels = []
    for number, name in enumerate(names):
        own = scores[scores["assignment"] == name]
        percent = 100 * own["auto"] / own["auto_max"].where(own["auto_max"] > 0, 1)
        counts, _ = np.histogram(percent, bins=range(0, 105, 10))
        step = nice_step(counts.max())
        top = step * max(1, math.ceil(counts.max() / step))
        bar_width = PLOT_WIDTH / len(counts)
        panels.append({
            "title": f"{name} ({len(own)})", "x": 60 + (number % columns) * (PLOT_WIDTH + 80),
            "y": 30 + (number // columns) * (PLOT_HEIGHT + 80),
            "bars": [{"x": index * bar_width, "width": bar_width, "height": PLOT_HEIGHT * count / top}
                     for index, count in enumerate(counts) if count],
            "y_ticks": [(PLOT_HEIGHT * (1 - value / top), value) for value in range(0, top + 1, step)],
        })
    rows = -(-max(len(names), 1) // columns)
    page = _template("distribution.svg.j2").render(
        panels=panels, plot_width=PLOT_WIDTH, plot_height=PLOT_HEIGHT,
        x_ticks=[(PLOT_WIDTH * value / 100, value) for value in range(0, 101, 20)],
        width=columns * (PLOT_WIDTH + 80) + 20, height=rows * (PLOT_HEIGHT + 80) + 10)
    return _data(page)


def nice_step(most):
    """A step of 1, 2 or 5 times a power of ten that gives at most 6 ticks up to `most`: 1, 2, 5, 10..."""
    step, factors = 1.0, itertools.cycle((2, 2.5, 2))
    while most / step > 5:
        step *= next(factors)
    return int(step)


_ENVIRONMENT = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                  trim_blocks=True, lstrip_blocks=True)


def _template(name):
    return _ENVIRONMENT.get_template(name)


def _data(svg):
    """An SVG as the report's <img> takes it (base64 of the text)."""
    return base64.b64encode(svg.encode()).decode()


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
    page = _template("class_report.html.j2").render(
        generated=datetime.now().isoformat(timespec="seconds"),
        data=data, scores=scores, questions=questions, students=students, flagged=flagged,
        lowest=students.head(LOWEST), manual=manual, assignments=assignments, submissions=submissions,
        examples=data.scores[data.scores["example"]] if not data.examples_only else data.scores.iloc[0:0],
        heat_map=heat_map_svg(data, heat_students) if heat_students else "", heat_students=len(heat_students),
        distribution=distribution_svg(scores) if not scores.empty else "",
        links=lambda student, assignment: links.get((student, assignment), []),
        similar=similarity.summary(root, assignments),
        example_prefix=EXAMPLE_STUDENT_PREFIX,
    )
    path = root / "class_report.html"
    path.write_text(page, encoding="utf-8")
    return path
