"""The `course` command: build the release, grade a class or the example submissions, report, print the
scores; and for students, check a notebook against its visible tests."""

import argparse
import os
import sys
import tempfile
from pathlib import Path

# Each command imports what it alone needs (nbgrader, the report's and similarity's libraries, build...)
# when it runs: no command pays seconds of imports for another's, and `course --help` answers at once.
TIMEOUT = 60  # coursetools.check.TIMEOUT, for the parser's help (a test checks that they agree)
COURSE_FILE = "assignments.csv"  # coursetools.lms.COURSE_FILE, for the parser's help (idem)


def forget_examples(root):
    """Remove the example students from the gradebook and from submitted/, autograded/ and feedback/.

    A re-run then starts clean: no stale gradebook rows, no "skipping existing" submission.
    """
    import shutil

    from nbgrader.api import Gradebook, MissingEntry

    from coursetools.course import EXAMPLE_STUDENT_PREFIX, gradebook_url

    with Gradebook(gradebook_url(root)) as gradebook:
        for student in [s.id for s in gradebook.students if s.id.startswith(EXAMPLE_STUDENT_PREFIX)]:
            try:
                gradebook.remove_student(student)
            except MissingEntry:
                pass
    for kind in ("submitted", "autograded", "feedback"):
        for folder in (root / kind).glob(EXAMPLE_STUDENT_PREFIX + "*"):
            shutil.rmtree(folder)


def demo(root):
    """The whole flow on the bundled example submissions: nbgrader's release, then `course grade`."""
    from coursetools.build import build
    from coursetools.course import EXAMPLE_STUDENT_PREFIX, assignments
    from coursetools.examples import submit_examples

    require_sandbox()
    forget_examples(root)  # first: nbgrader refuses to change cells that submissions were graded on
    build(root)
    for assignment in assignments(root):
        submit_examples(root, assignment)
    print(f"$ course grade --student '{EXAMPLE_STUDENT_PREFIX}*'", flush=True)
    flagged = grade_and_report(root, assignments(root), students=EXAMPLE_STUDENT_PREFIX + "*")
    print_scores(root)
    if flagged:
        sys.exit(1)


def mutation_score(root, seeds=1):
    """Grade the answer corpus in a throw-away copy of the course and print the mutation score; every test
    that draws hidden inputs from the student's seed judges each answer under `seeds` seeds."""
    from coursetools import batch, corpus
    from coursetools.build import build
    from coursetools.course import assignments, copy_course

    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        copy = Path(folder)
        copy_course(root, copy, parts=("nbgrader_config.py", "source", str(corpus.CORPUS)))
        build(copy)
        with open(copy / "nbgrader_config.py", "a") as config:
            config.write(f"\nc.JudgedExecute.other_seeds = {seeds - 1}\n")
        entries = corpus.submit_corpus(copy, corpus.read_corpus(copy), prefix="corpus-")
        print("$ course grade --student 'corpus-*'", flush=True)
        batch.grade_class(copy, assignments(copy), assignments(copy), students="corpus-*")
        corpus.record_results(copy, entries)
    print()
    print("\n".join(corpus.score_lines(entries)))
    problems = corpus.problem_lines(entries)
    if problems:
        print("\nNot graded as declared:", *problems, sep="\n  ")
        sys.exit(1)


def grade(root, args):
    """Grade every submission of the chosen assignments in parallel; write grades.csv and the report."""
    from coursetools.course import assignments
    from coursetools.grading import kernel

    chosen = args.assignments or assignments(root)
    unknown = sorted(set(chosen) - set(assignments(root)))
    if unknown:
        sys.exit(f"no such assignment: {', '.join(unknown)}")
    if args.no_sandbox:
        print("WARNING: grading WITHOUT the sandbox: student code runs with your rights, can read "
              "source/ and the gradebook, and can reach the network. Only for submissions you trust.",
              file=sys.stderr)
        os.environ[kernel.NO_SANDBOX_VARIABLE] = "1"  # inherited by the grading workers
    else:
        require_sandbox()
    from coursetools.course import load_config

    # first: the template's imports of the libraries are the longest wait of a short run; they overlap
    # with the grading modules' imports and reading the submissions
    template = None if args.dask_scheduler else kernel.start_shared_template(load_config(root))
    flagged = grade_and_report(root, chosen, args.student, args.workers, args.dask_scheduler, args.quiet,
                               template)
    if flagged:
        sys.exit(1)


def grade_and_report(root, chosen, students=None, workers=None, scheduler=None, quiet=False, template=None):
    """Grade, export grades.csv, write the class report, say what needs a TA; return the flagged results.
    `template`: the run's kernel template, if started already (batch.grade_class)."""
    from coursetools import batch, lms
    from coursetools.course import assignments, export_grades

    lms.apply_due_dates(root)  # before grading: the late penalty reads them
    results = batch.grade_class(root, chosen, assignments(root), students=students, workers=workers,
                                scheduler=scheduler, quiet=quiet, template=template)
    print(f"grades: {export_grades(root)}")
    graded = [r for r in results if r.graded]
    flagged = [r for r in results if r.reason]
    print(f"graded {len(graded)} submission{'' if len(graded) == 1 else 's'}; {len(flagged)} need a TA's "
          "attention")
    for result in flagged:
        print(f"  {result.student or 'submitted'} / {result.assignment}: {result.reason}")
    regraded = {result.assignment for result in graded}  # the others' submissions did not change
    for assignment in [name for name in chosen if name in regraded]:  # pairs of alike answers, for the report
        if any((root / "submitted").glob(f"*/{assignment}/*.ipynb")):
            print(f"similar answers: {write_similarity(root, assignment)}")
    print(f"class report: {write_report(root)}")
    return flagged


def roster(root, args):
    """Record the students of an LMS's roster CSV in the gradebook, with their LMS ids."""
    from coursetools import lms

    try:
        layout, count, new = lms.import_roster(root, args.file)
    except lms.RosterError as error:
        sys.exit(str(error))
    print(f"{args.file}: {count} students of a {layout} roster recorded ({new} new)")


def collect_zip(root, args):
    """File the notebooks of an LMS's download under submitted/; exit 1 when a file could not be placed."""
    from coursetools import collect, findings
    from coursetools.course import assignments

    if args.assignment not in assignments(root):
        sys.exit(f"no such assignment: {args.assignment} (one of {', '.join(assignments(root))})")
    outcome = collect.collect(root, args.assignment, args.zipfile)
    states = list(outcome.placed.values())
    counts = ", ".join(f"{states.count(state)} {state}" for state in dict.fromkeys(states))
    late = sum(collect.late_marks(root, args.assignment).get(student, False) for student in outcome.placed)
    print(f"{args.assignment}: {len(states)} students' notebooks collected ({counts or 'none'})"
          + (f"; {late} marked late by the LMS" if late else ""))
    for line in outcome.notes:
        print(f"  note: {line}")
    if outcome.problems:
        print(f"{len(outcome.problems)} files not placed (also in {findings.FLAGS_FILE}):", file=sys.stderr)
        for _, detail in outcome.problems:
            print(f"  {detail}", file=sys.stderr)
    if outcome.problems or not states:
        sys.exit(1)


def export_lms(root, args):
    """Write the gradebook's scores as the CSV that Canvas's or Moodle's gradebook imports."""
    from coursetools import lms

    done = lms.export(root, args.to, args.file, allow_pending=args.allow_pending)
    print(f"{done.path}: {done.students} students for {args.to}")
    for what, lines in (("left blank (--allow-pending exports them)", done.held_back),
                        ("not in the roster, left out (course roster import)", done.not_in_roster)):
        if lines:
            print(f"{len(lines)} {what}:", *lines, sep="\n  ", file=sys.stderr)


def require_sandbox():
    """Stop at once, with one line that says what to do, when grading kernels cannot be sandboxed."""
    from coursetools.grading import kernel

    missing = kernel.sandbox_missing()
    if missing:
        sys.exit(missing)


def print_scores(root):
    from coursetools.course import gradebook_url
    from coursetools.scores import format_table, score_table

    print()
    print(format_table(score_table(gradebook_url(root))))


def parser():
    """The `course` command's parser (also read by the test that checks the documented commands)."""
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    building = commands.add_parser("build", help="regenerate release/ and solutions/ from source/")
    building.add_argument("assignments", nargs="*", help="assignments to build (default: all)")
    building.add_argument("--regrade", action="store_true", help="the assignments have graded submissions: "
                          "update their definition in the gradebook and grade every submission again")
    commands.add_parser("demo", help="build, then autograde the example submissions, write feedback, "
                        "export grades.csv and print the scores")
    commands.add_parser("scores", help="print the score table of the gradebook")
    scoring = commands.add_parser("mutation-score", help="grade the answer corpus of grader_tests/corpus and "
                                  "print, per function, correct answers at full marks and mistakes caught")
    scoring.add_argument("--seeds", type=int, default=1, help="judge every answer under this many seeds of "
                         "hidden inputs; an answer whose verdict changes with them is not graded as declared")
    grading = commands.add_parser("grade", help="grade every submission in submitted/, several at once; exit "
                                  "code 1 when a submission needs a TA's attention")
    grading.add_argument("assignments", nargs="*", help="assignments to grade (default: all)")
    grading.add_argument("--student", default=None, metavar="PATTERN", help="grade only the students whose "
                         "id matches this pattern, e.g. 'jdoe', 'group2-*', or 'example-*' for the example "
                         "submissions (default: every student but the examples)")
    grading.add_argument("--workers", type=int, default=None, help="submissions graded at once "
                         "(default: the number of cores)")
    grading.add_argument("--dask-scheduler", metavar="ADDRESS", help="send the grading jobs to this Dask "
                         "scheduler instead of local worker processes")
    grading.add_argument("--no-sandbox", action="store_true", help="run student code without the sandbox "
                         "(for a machine without bubblewrap; unsafe for untrusted submissions)")
    grading.add_argument("--quiet", action="store_true", help="no progress bar (for CI and cron)")
    commands.add_parser("report", help="write class_report.html and class_report.csv from the gradebook")
    rosters = commands.add_parser("roster", help="the class list of the LMS").add_subparsers(
        dest="action", required=True)
    importing = rosters.add_parser("import", help="record the students of a roster CSV exported by Canvas "
                                   "(gradebook export) or Moodle (participants or grading worksheet), or "
                                   "nbgrader's student CSV, with their LMS ids; nothing when a row is bad")
    importing.add_argument("file", help="the roster CSV")
    collecting = commands.add_parser("collect", help="file the notebooks of a Canvas or Moodle 'download "
                                     "all submissions' zip under submitted/; exit code 1 when a file "
                                     "could not be placed")
    collecting.add_argument("assignment")
    collecting.add_argument("zipfile")
    exporting = commands.add_parser("export", help="write the scores as the CSV that the LMS's gradebook "
                                    "imports (Canvas assignment ids and Moodle grade items from "
                                    f"{COURSE_FILE})")
    exporting.add_argument("--to", choices=["canvas", "moodle"], required=True)
    exporting.add_argument("file", help="the CSV to write")
    exporting.add_argument("--allow-pending", action="store_true", help="also export submissions with "
                           "hand-graded points pending or a flag (else left blank)")
    similar = commands.add_parser("similarity", help="compare the students' answer cells pairwise "
                                  "(copydetect) and write similarity_<assignment>.html")
    similar.add_argument("assignment")
    checking = commands.add_parser("check", help="run the visible tests of notebooks as `nbgrader validate` "
                                   "does, from any folder (checks.py beside each notebook), and print one "
                                   "line per question; exit code 1 when a check fails")
    checking.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    checking.add_argument("--timeout", type=int, default=TIMEOUT, metavar="SECONDS", help="seconds a cell "
                          f"may run (default: {TIMEOUT}, as when it is graded)")
    return parser


def write_similarity(root, assignment):
    from coursetools import similarity

    return similarity.write_report(root, assignment)


def write_report(root):
    from coursetools import report

    return report.write_report(root)


def main(argv=None):
    args = parser().parse_args(argv)
    from coursetools.course import assignments, find_root, put_environment_on_path, silence_known_warnings

    put_environment_on_path()
    silence_known_warnings()
    if args.command == "check":  # a student's: no course directory needed
        from coursetools.check import check_notebooks

        sys.exit(check_notebooks(args.notebooks, args.timeout))
    root = find_root()
    if args.command == "grade":
        grade(root, args)
        return
    if args.command == "build":
        from coursetools import lms
        from coursetools.build import build

        build(root, args.assignments or None, regrade=args.regrade)
        lms.apply_due_dates(root)
        return
    if args.command == "similarity":
        if args.assignment not in assignments(root):
            sys.exit(f"no such assignment: {args.assignment}")
        print(write_similarity(root, args.assignment))
        return
    if args.command == "mutation-score":
        mutation_score(root, max(args.seeds, 1))
        return
    if args.command in ("roster", "collect", "export"):
        {"roster": roster, "collect": collect_zip, "export": export_lms}[args.command](root, args)
        return
    commands = {"demo": demo, "scores": print_scores, "report": lambda root: print(write_report(root))}
    commands[args.command](root)
