"""`course build`: release/ and solutions/ (and the gradebook's copy of every cell) made from source/.

nbgrader builds into a folder of its own, `.build/`, and what it built is then swapped in, so a failed
build leaves release/, solutions/ and the gradebook as they were and says why in one line.

nbgrader refuses to add or remove cells of an assignment that has graded submissions. `course build
ASSIGNMENT --regrade` changes it anyway: the hand-graded work of every submission is saved to
regrade_backup/, the submissions leave the gradebook (their files stay in submitted/), nbgrader records
the new cells, every submission is graded again, and the TAs' scores and comments come back on the cells
that did not change; a changed or removed cell's are flagged for a TA in grading_flags.csv.
"""

import ctypes
import datetime
import json
import re
import shutil
import tempfile
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from coursetools import batch, findings, report
from coursetools.course import assignments, export_grades, gradebook_url, nbgrader

BUILD_FOLDER = ".build"  # beside release/ and solutions/: on the same file system, so a rename moves them
BACKUP_FOLDER = "regrade_backup"
_ERROR = re.compile(r"^\s*([\w.]*(?:Error|Exception)): (.+)$", re.MULTILINE)
_FAILED = re.compile(r"There was an error processing assignment: (\S+)")


def build(root, chosen=None, regrade=False, workers=None):
    """Regenerate the release and the solutions of the `chosen` assignments (default: all); with
    `regrade`, also when they have graded submissions, which are graded again (`workers` at once)."""
    names = list(chosen or assignments(root))
    unknown = sorted(set(names) - set(assignments(root)))
    if unknown:
        raise SystemExit(f"no such assignment: {', '.join(unknown)}")
    if regrade:
        from coursetools.grading import kernel

        missing = kernel.sandbox_missing()  # checked before any grade leaves the gradebook
        if missing:
            raise SystemExit(missing)
    (root / BUILD_FOLDER).mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=root / BUILD_FOLDER))
    release, solutions = work / "release", work / "solutions"
    failed = {}  # assignment -> the one line that says why
    try:
        # first without the gradebook: a cell that nbgrader cannot clear (a hidden-test region without its
        # end) stops it after it has recorded the new cells; here it stops before anything is recorded
        ready = run(root, names, failed, release, "generate_assignment", "--no-db",
                    f"--CourseDirectory.release_directory={release.relative_to(root)}")
        saved = hand_grading(root, ready) if regrade else {}
        forget_submissions(root, saved)
        recorded = run(root, ready, failed, release, "generate_assignment",
                       f"--CourseDirectory.release_directory={release.relative_to(root)}")
        solved = run(root, recorded, failed, solutions, "generate_solution",
                     f"--CourseDirectory.solution_directory={solutions.relative_to(root)}")
        for name in recorded:  # the release goes with the cells nbgrader recorded
            swap(release / name, root / "release" / name)
        for name in solved:
            swap(solutions / name, root / "solutions" / name)
        if saved:  # graded again even if nbgrader failed after they left the gradebook
            grade_again(root, saved, workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not any((root / BUILD_FOLDER).iterdir()):
            (root / BUILD_FOLDER).rmdir()
    if failed:
        raise SystemExit("\n".join(failed[name] for name in names if name in failed))


def run(root, names, failed, output, step, *options):
    """Run an nbgrader step on `names` (in one run when they are all the course's assignments); return
    those it built into `output`, and put a line for each of the others in `failed`."""
    for pattern in ["*"] if names == assignments(root) else names:
        try:
            nbgrader(root, step, pattern, "--force", *options, capture=True)
        except SystemExit as error:
            failed.update(why_failed(str(error), [pattern] if pattern != "*" else names, step))
    for name in names:
        if name not in failed and not (output / name).is_dir():
            failed[name] = f"{name}: nbgrader {step} made nothing"
    return [name for name in names if name not in failed]


def why_failed(output, names, step):
    """{assignment: one line that says why} from what a failed nbgrader run printed."""
    parts = _FAILED.split(output)  # nbgrader logs each assignment that failed, then its traceback
    texts = {Path(path).name: text for path, text in zip(parts[1::2], parts[2::2], strict=True)}
    if texts:
        texts = {name: text for name, text in texts.items() if name in names}
    else:  # it stopped before any assignment (its configuration, no notebook found)
        texts = dict.fromkeys(names, output)
    lines = {}
    for name, text in texts.items():
        errors = _ERROR.findall(text)
        error = errors[-1][1].strip() if errors else text.strip().splitlines()[-1]
        if "because there are submissions associated with it" in error:
            lines[name] = (f"{name}: nbgrader cannot change the cells of an assignment with graded "
                           f"submissions ({error}); run `course build {name} --regrade`")
        else:
            lines[name] = f"{name}: nbgrader {step} failed: {error}"
    return lines


_libc = ctypes.CDLL(None, use_errno=True)


def swap(new, target):
    """Put the folder `new` at `target`; the old `target` ends at `new`'s path. Where Linux has it, one
    exchange (renameat2 RENAME_EXCHANGE) does it, so that `target` is never missing, not even briefly."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        new.rename(target)
        return
    exchange = getattr(_libc, "renameat2", None)
    at_cwd, rename_exchange = -100, 2
    if exchange and exchange(at_cwd, bytes(new), at_cwd, bytes(target), rename_exchange) == 0:
        return
    aside = new.with_name(new.name + ".old")
    target.rename(aside)
    new.rename(target)
    aside.rename(new)


def cell_definitions(gradebook, assignment):
    """{(notebook, cell): {cell_type, max_score, checksum, source}} of an assignment in the gradebook."""
    cells = {}
    for notebook in gradebook.find_assignment(assignment).notebooks:
        points = {cell.name: cell.max_score for cell in notebook.grade_cells}
        for cell in notebook.source_cells:
            cells[(notebook.name, cell.name)] = {"cell_type": cell.cell_type, "checksum": cell.checksum,
                                                 "max_score": points.get(cell.name), "source": cell.source}
    return cells


def hand_grading(root, names):
    """{assignment: backup}: the graded cells of each of `names` and every graded submission, with its
    hand-graded work (the TA's scores, extra credit and comments, and the definition of each cell when it
    was graded) and its extension; each also written to regrade_backup/ (with what an unfinished regrade
    left there)."""
    saved, backups = {}, root / BACKUP_FOLDER
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with Gradebook(gradebook_url(root)) as gradebook:
        for name in names:
            try:
                definitions = cell_definitions(gradebook, name)
                found = gradebook.find_assignment(name).submissions
            except MissingEntry:
                continue
            submissions = {s.student.id: submission_work(s, definitions) for s in found}
            # a regrade that stopped before it gave the hand-graded work back: its backup has it (the oldest
            # backup wins: a later one was made from what the stopped regrade left)
            unfinished = [path for path in sorted(backups.glob(f"{name}-*.json"))
                          if not json.loads(path.read_text())["restored"]]
            graded_cells = sorted([notebook, cell] for (notebook, cell), definition in definitions.items()
                                  if definition["max_score"] is not None)
            earlier = {}
            for path in reversed(unfinished):
                backup = json.loads(path.read_text())
                graded_cells = backup["graded_cells"]
                earlier.update({submission["student"]: submission for submission in backup["submissions"]})
            submissions.update(earlier)
            if not submissions:
                continue
            lost = [student for student in submissions if not (root / "submitted" / student / name).is_dir()]
            if lost:
                raise SystemExit(f"{name}: {', '.join(sorted(lost))} graded but not in submitted/: a regrade "
                                 "would lose their grades; put their submissions back first")
            saved[name] = {"assignment": name, "restored": False, "graded_cells": graded_cells,
                           "submissions": list(submissions.values())}
            backups.mkdir(exist_ok=True)
            path = backups / f"{name}-{stamp}.json"
            path.write_text(json.dumps(saved[name], indent=1))
            for old in set(unfinished) - {path}:  # their submissions are in the new backup
                old.write_text(json.dumps({**json.loads(old.read_text()), "restored": True}, indent=1))
            print(f"hand-graded work of {name} saved to {path.relative_to(root)}")
    return saved


def submission_work(submission, definitions):
    """A submission's hand-graded work, as plain data."""
    cells = []
    for notebook in submission.notebooks:
        comments = {comment.name: comment.manual_comment for comment in notebook.comments}
        grades = {grade.name: grade for grade in notebook.grades}
        for name in sorted(set(grades) | set(comments)):
            grade = grades.get(name)
            score, extra = (grade.manual_score, grade.extra_credit) if grade else (None, None)
            comment = comments.get(name) or None
            work = {"manual_score": score, "extra_credit": extra, "manual_comment": comment}
            if any(value is not None for value in work.values()):
                cells.append({"notebook": notebook.name, "cell": name, **work,
                              "definition": definitions.get((notebook.name, name))})
    extension = submission.extension.total_seconds() if submission.extension else None
    return {"student": submission.student.id, "extension": extension, "cells": cells}


def forget_submissions(root, saved):
    """Remove the saved submissions from the gradebook (their files stay): nbgrader may then change the
    assignment's cells."""
    with Gradebook(gradebook_url(root)) as gradebook:
        for name, backup in saved.items():
            for submission in backup["submissions"]:
                try:
                    gradebook.remove_submission(name, submission["student"])
                except MissingEntry:  # left the gradebook in a regrade that stopped
                    pass


def grade_again(root, saved, workers):
    """Grade every submission of the saved assignments again, give back the hand-graded work on cells that
    did not change, flag the others, export grades.csv and write the class report."""
    with Gradebook(gradebook_url(root)) as gradebook:  # an extension counts in the late penalty
        for name, backup in saved.items():
            for submission in backup["submissions"]:
                if submission["extension"]:
                    extension = datetime.timedelta(seconds=submission["extension"])
                    gradebook.update_or_create_submission(name, submission["student"], extension=extension)
    print(f"$ course grade {' '.join(saved)} --student '*'", flush=True)
    results = batch.grade_class(root, list(saved), assignments(root), students="*", workers=workers,
                                quiet=True)
    for result in results:
        if result.reason:
            print(f"  {result.student or 'submitted'} / {result.assignment}: {result.reason}")
    kept, redo = restore(root, saved)
    with Gradebook(gradebook_url(root)) as gradebook:
        for name, backup in saved.items():
            before = {tuple(cell) for cell in backup["graded_cells"]}
            added = [cell for (notebook, cell), definition in cell_definitions(gradebook, name).items()
                     if definition["max_score"] is not None and (notebook, cell) not in before]
            if added:
                print(f"{name}: new graded cells {', '.join(added)}: new test cells were put back into every "
                      "submission and graded; a question added after a hand-in has no answer (0 points)")
    print(f"grades: {export_grades(root)}")
    print(f"class report: {report.write_report(root)}")
    graded = sum(result.graded for result in results if result.assignment in saved)
    print(f"regrade: {graded} submission{'' if graded == 1 else 's'} graded again, {kept} hand-graded "
          f"score{'' if kept == 1 else 's'} kept, {redo} to grade again by hand"
          + (f" (see {findings.FLAGS_FILE})" if redo else ""))


def restore(root, saved):
    """Give back the hand-graded work on cells whose definition did not change; flag each submission with
    a cell that changed or went away. Return (cells given back, cells to grade again)."""
    kept, reasons = 0, {}
    with Gradebook(gradebook_url(root)) as gradebook:
        for name, backup in saved.items():
            definitions = cell_definitions(gradebook, name)
            for submission in backup["submissions"]:
                student = submission["student"]
                for work in submission["cells"]:
                    notebook, cell, before = work["notebook"], work["cell"], work["definition"] or {}
                    now = definitions.get((notebook, cell))
                    same = now is not None and all(now[key] == before.get(key)
                                                   for key in ("cell_type", "max_score", "checksum"))
                    if same and put_back(gradebook, name, student, work):
                        kept += 1
                        continue
                    reasons.setdefault((student, name), []).append(dropped(work, changed=now is not None))
                    try:
                        gradebook.find_submission_notebook(notebook, name, student).flagged = True
                    except MissingEntry:
                        pass
            gradebook.db.commit()
    add_flags(root, reasons)
    for path in (root / BACKUP_FOLDER).glob("*.json"):
        backup = json.loads(path.read_text())
        if backup["assignment"] in saved and not backup["restored"]:
            path.write_text(json.dumps({**backup, "restored": True}, indent=1))
    return kept, sum(len(lines) for lines in reasons.values())


def put_back(gradebook, assignment, student, work):
    """Put a cell's hand-graded work back into the graded submission; False when it has no such cell."""
    notebook, cell = work["notebook"], work["cell"]
    try:
        if work["manual_score"] is not None or work["extra_credit"] is not None:
            grade = gradebook.find_grade(cell, notebook, assignment, student)
            grade.manual_score, grade.extra_credit = work["manual_score"], work["extra_credit"]
            # as nbgrader's formgrader sets it when a TA enters a score
            grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
        if work["manual_comment"] is not None:
            comment = gradebook.find_comment(cell, notebook, assignment, student)
            comment.manual_comment = work["manual_comment"]
    except MissingEntry:
        return False
    return True


def dropped(work, changed):
    """Why a cell's hand-graded work was not given back, and what it was."""
    before = work["definition"] or {}
    kind = ("written answer" if before.get("cell_type") == "markdown"
            else "test cell" if before.get("max_score") is not None else "answer")
    was = []
    if work["manual_score"] is not None:
        was.append(f"{work['manual_score']:g}/{before.get('max_score') or 0:g}")
    if work["extra_credit"]:
        was.append(f"{work['extra_credit']:g} extra credit")
    if work["manual_comment"]:
        was.append("a comment")
    what = f"{kind} {work['cell']} {'changed' if changed else 'was removed'} since it was graded by hand"
    return f"{what} (was {' and '.join(was)}): {'grade it again' if changed else 'dropped'}"


def add_flags(root, reasons):
    """Add reasons to grading_flags.csv ({(student, assignment): [reason]}), keeping every other row."""
    rows = findings.read_flags(root)
    for key, lines in reasons.items():
        rows[key] = "; ".join(filter(None, [rows.get(key), *lines]))
    findings.save_flags(root, rows)
