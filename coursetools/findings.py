"""What grading found about a submission, from where it is found to everyone who must know.

A Finding is made where something is seen (the kernel manager, the grading preprocessors, the batch
grader) and travels unchanged: in the autograded notebook's metadata (`grading.findings`), then to the
gradebook (the flag and a comment for formgrader), grading_flags.csv, the class report, and the
student's feedback. Each finding says what happened twice: in words for TAs, and, where the student
should know, in words for the student (never with a grader's path or a TA's note). A finding that
needs a TA flags the submission; the others are notes.

grading_flags.csv (FLAGS_FILE) is the one list of flagged submissions beside grades.csv, one row per
(student, assignment) with its reason: `course grade`, `course collect` and `course build` all write it
through read_flags and save_flags here.
"""

import csv
from dataclasses import asdict, dataclass

FLAGS_FILE = "grading_flags.csv"
# nb.metadata["grading"]["findings"]: a list of Finding dicts; ["seed"]: the seed of the hidden inputs;
# ["student_cpu_seconds"]: the CPU that the student's code used in the kernel
METADATA_KEY = "grading"


@dataclass(frozen=True)
class Finding:
    kind: str  # a short name of what happened, e.g. "missing-notebook", "time-limit", "edited-test"
    detail: str  # for TAs: what happened, in words
    student: str = ""  # for the student's feedback; empty when the student need not know
    needs_ta: bool = True  # True: the submission is flagged for a TA; False: a note


def add(nb, finding):
    """Record `finding` in the notebook (once: the same finding twice is one finding)."""
    found = nb.metadata.setdefault(METADATA_KEY, {}).setdefault("findings", [])
    if asdict(finding) not in found:
        found.append(asdict(finding))


def read(nb):
    """The findings recorded in a notebook, in order."""
    return [Finding(**entry) for entry in nb.metadata.get(METADATA_KEY, {}).get("findings", [])]


def clear(nb):
    """Forget any findings a notebook carries: a submitted notebook's metadata is the student's to write."""
    nb.metadata.pop(METADATA_KEY, None)


def set_seed(nb, seed):
    """Record the seed of the student's hidden inputs in the notebook (for the gradebook, with the grade)."""
    nb.metadata.setdefault(METADATA_KEY, {})["seed"] = str(seed)


def set_student_cpu(nb, seconds):
    """Record the CPU seconds that the student's own code used in the kernel (what grading cannot do
    without: its floor, which benchmarks compare grading with)."""
    nb.metadata.setdefault(METADATA_KEY, {})["student_cpu_seconds"] = round(seconds, 3)


def seed(nb):
    """The seed of the hidden inputs a notebook was graded with ("" when none was recorded)."""
    return nb.metadata.get(METADATA_KEY, {}).get("seed", "")


def reason(found):
    """What a TA reads about a submission: the details of its findings that need a TA, in one line."""
    return "; ".join(finding.detail for finding in found if finding.needs_ta)


def notes(found):
    """The details of the findings that need no TA (for the report), in one line."""
    return "; ".join(finding.detail for finding in found if not finding.needs_ta)


# What TAs see in formgrader's comment box of a flagged submission: feedback never shows it to students.
TA_NOTE_PREFIX = "Needs a TA: "


def read_flags(root):
    """{(student, assignment): reason} of grading_flags.csv ({} before anything was flagged)."""
    path = root / FLAGS_FILE
    if not path.exists():
        return {}
    with path.open(newline="") as file:
        return {(row["student"], row["assignment"]): row["reason"] for row in csv.DictReader(file)}


def save_flags(root, rows):
    """Write grading_flags.csv, next to grades.csv, from {(student, assignment): reason}."""
    with (root / FLAGS_FILE).open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "assignment", "reason"])
        for (student, assignment), reason in sorted(rows.items()):
            writer.writerow([student, assignment, reason])


def update_flags(root, reasons):
    """Replace the rows of grading_flags.csv of the submissions in {(student, assignment): reason}, keeping
    the others (submissions not graded this time): a submission with an empty reason is no longer flagged."""
    rows = read_flags(root)
    for key, why in reasons.items():
        rows.pop(key, None)
        if why:
            rows[key] = why
    save_flags(root, rows)
