"""The `course` command: build the release, grade the example submissions, print the scores."""

import argparse
import shutil

from nbgrader.api import Gradebook, MissingEntry

from coursetools.course import EXAMPLE_STUDENT_PREFIX, assignments, find_root, nbgrader
from coursetools.examples import submit_examples
from coursetools.scores import format_table, score_table


def build(root):
    """release/ and solutions/ (and the gradebook's copy of every cell) regenerated from source/."""
    nbgrader(root, "generate_assignment", "*", "--force")
    nbgrader(root, "generate_solution", "*", "--force")


def forget_examples(root):
    """Remove the example students from the gradebook and from submitted/, autograded/ and feedback/.

    A re-run then starts clean: no stale gradebook rows, no "skipping existing" submission.
    """
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for student in [s.id for s in gradebook.students if s.id.startswith(EXAMPLE_STUDENT_PREFIX)]:
            try:
                gradebook.remove_student(student)
            except MissingEntry:
                pass
    for kind in ("submitted", "autograded", "feedback"):
        for folder in (root / kind).glob(EXAMPLE_STUDENT_PREFIX + "*"):
            shutil.rmtree(folder)


def demo(root):
    """The whole flow on the bundled example submissions, with nbgrader's own commands."""
    build(root)
    forget_examples(root)
    for assignment in assignments(root):
        submit_examples(root, assignment)
    # one nbgrader run for all assignments: each run costs seconds of start-up
    examples = EXAMPLE_STUDENT_PREFIX + "*"
    nbgrader(root, "autograde", "*", f"--student={examples}", "--force")
    nbgrader(root, "generate_feedback", "*", f"--student={examples}", "--force")
    nbgrader(root, "export")
    print_scores(root)


def print_scores(root):
    print()
    print(format_table(score_table(f"sqlite:///{root / 'gradebook.db'}")))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="regenerate release/ and solutions/ from source/")
    commands.add_parser("demo", help="build, then autograde the example submissions, write feedback, "
                        "export grades.csv and print the scores")
    commands.add_parser("scores", help="print the score table of the gradebook")
    args = parser.parse_args(argv)
    root = find_root()
    {"build": build, "demo": demo, "scores": print_scores}[args.command](root)
