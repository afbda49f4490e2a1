"""The `course` command: build the release, grade the example submissions, print the scores."""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from coursetools import corpus
from coursetools.course import (
    EXAMPLE_STUDENT_PREFIX,
    assignments,
    copy_course,
    find_root,
    nbgrader,
    put_environment_on_path,
)
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
    forget_examples(root)  # first: nbgrader refuses to change cells that submissions were graded on
    build(root)
    for assignment in assignments(root):
        submit_examples(root, assignment)
    # one nbgrader run for all assignments: each run costs seconds of start-up
    examples = EXAMPLE_STUDENT_PREFIX + "*"
    nbgrader(root, "autograde", "*", f"--student={examples}", "--force")
    nbgrader(root, "generate_feedback", "*", f"--student={examples}", "--force")
    nbgrader(root, "export")
    print_scores(root)


def mutation_score(root):
    """Grade the answer corpus in a throw-away copy of the course and print the mutation score."""
    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        copy = Path(folder)
        copy_course(root, copy, parts=("nbgrader_config.py", "source", str(corpus.CORPUS)))
        build(copy)
        entries = corpus.submit_corpus(copy, corpus.read_corpus(copy), prefix="corpus-")
        nbgrader(copy, "autograde", "*", "--student=corpus-*", "--force")
        corpus.record_results(copy, entries)
    print()
    print("\n".join(corpus.score_lines(entries)))
    problems = corpus.problem_lines(entries)
    if problems:
        print("\nNot graded as declared:", *problems, sep="\n  ")
        sys.exit(1)


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
    commands.add_parser("mutation-score", help="grade the answer corpus of grader_tests/corpus and print, "
                        "per function, correct answers at full marks and mistakes caught")
    args = parser.parse_args(argv)
    put_environment_on_path()
    root = find_root()
    commands = {"build": build, "demo": demo, "scores": print_scores, "mutation-score": mutation_score}
    commands[args.command](root)
