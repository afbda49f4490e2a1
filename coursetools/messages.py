"""What grading said of every graded notebook, kept in the gradebook's own database beside nbgrader's tables:
the failure message of each test cell that failed, and the findings (coursetools.findings).

They are written when the notebook is graded (by RecordMessages in `nbgrader autograde`; in `course grade`
by record.Recorder, or record.record for one result) and read by the class report with two queries, so
that a report of thousands of students opens no notebook. The tables are ours, not nbgrader's: nbgrader
and its migrations leave them alone, and they live wherever CourseDirectory.db_url points (SQLite or
PostgreSQL).
"""

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text, delete, insert, select

from coursetools.course import grade_id, is_test_cell
from coursetools.findings import Finding

_metadata = MetaData()


def _notebook_columns():
    """The graded notebook a row is of."""
    return [Column(name, String(128), nullable=False, index=name == "student")
            for name in ("assignment", "student", "notebook")]


FAILURES = Table("grading_failures", _metadata, Column("id", Integer, primary_key=True),
                 *_notebook_columns(), Column("cell", String(128), nullable=False),
                 Column("message", Text, nullable=False))
FINDINGS = Table("grading_findings", _metadata, Column("id", Integer, primary_key=True),
              *_notebook_columns(), Column("kind", String(64), nullable=False),
              Column("detail", Text, nullable=False), Column("for_student", Text, nullable=False),
              Column("needs_ta", Boolean, nullable=False))
# the seed that the student's hidden inputs were drawn from (coursetools.grading.judge.hidden_seed), for audit
SEEDS = Table("grading_seeds", _metadata, Column("id", Integer, primary_key=True), *_notebook_columns(),
              Column("seed", String(32), nullable=False))
# the message of a test cell that never ran, its notebook not graded (the report leaves it out of statistics)
NOT_GRADED = "(not graded: see the flagged submissions)"
FAILURE_COLUMNS = ["assignment", "student", "notebook", "cell", "message"]
FINDING_COLUMNS = ["assignment", "student", "notebook", "kind", "detail", "for_student", "needs_ta"]


def failure_messages(notebook):
    """{test cell: its failure message, whole} of an autograded notebook: a failed test's error, or what a
    test that earned partial credit said of its first failing case."""
    messages = {}
    for cell in notebook.cells:
        if not is_test_cell(cell):
            continue
        outputs = cell.get("outputs", [])
        errors = [output for output in outputs if output.output_type == "error"]
        streams = [output for output in outputs if output.output_type == "stream"]
        if errors:
            messages[grade_id(cell)] = f"{errors[-1].ename}: {errors[-1].evalue}"
        elif streams and any(output.output_type == "execute_result" for output in outputs):
            messages[grade_id(cell)] = f"Partial credit: {streams[-1].text.strip()}"
    return messages


def save(session, assignment, student, notebook, cell_messages, notebook_findings, seed=""):
    """Replace what is recorded of one graded notebook: {test cell: failure message}, [Finding] and the seed
    of its hidden inputs. `session` is an open Gradebook's (gradebook.db); the caller commits."""
    _metadata.create_all(session.connection(), checkfirst=True)  # in the session's transaction
    key = {"assignment": assignment, "student": student, "notebook": notebook}
    for table in (FAILURES, FINDINGS, SEEDS):
        session.execute(delete(table).where(*[table.c[name] == value for name, value in key.items()]))
    if seed:
        session.execute(insert(SEEDS), [{**key, "seed": str(seed)}])
    if cell_messages:
        session.execute(insert(FAILURES), [{**key, "cell": cell, "message": message}
                                           for cell, message in cell_messages.items()])
    if notebook_findings:
        session.execute(insert(FINDINGS), [{**key, "kind": f.kind, "detail": f.detail,
                                            "for_student": f.student, "needs_ta": f.needs_ta}
                                           for f in notebook_findings])


def read(session):
    """(failure messages, findings) of every graded notebook, as DataFrames of FAILURE_COLUMNS and
    FINDING_COLUMNS."""
    import pandas as pd  # here: only the report reads them, the notebooks' grading only writes them

    _metadata.create_all(session.connection(), checkfirst=True)  # in the session's transaction
    messages = session.execute(select(*[FAILURES.c[name] for name in FAILURE_COLUMNS])).all()
    recorded = session.execute(select(*[FINDINGS.c[name] for name in FINDING_COLUMNS])
                               .order_by(FINDINGS.c.id)).all()
    return (pd.DataFrame([tuple(row) for row in messages], columns=FAILURE_COLUMNS),
            pd.DataFrame([tuple(row) for row in recorded], columns=FINDING_COLUMNS))


def seeds(session):
    """{(assignment, student, notebook): the seed its hidden inputs were drawn from}."""
    _metadata.create_all(session.connection(), checkfirst=True)
    rows = session.execute(select(SEEDS.c.assignment, SEEDS.c.student, SEEDS.c.notebook, SEEDS.c.seed)).all()
    return {(row.assignment, row.student, row.notebook): row.seed for row in rows}


def as_findings(rows):
    """The Findings of rows of the findings table, in order, each once."""
    return list(dict.fromkeys(Finding(row.kind, row.detail, row.for_student, bool(row.needs_ta))
                              for row in rows.itertuples()))
