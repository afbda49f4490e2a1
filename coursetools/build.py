"""`course build`: release/ and solutions/ (and the gradebook's copy of every cell) made from source/."""

from coursetools.course import nbgrader


def build(root, chosen=None, regrade=False):
    """Regenerate the release and the solutions of the `chosen` assignments (default: all)."""
    for assignment in chosen or ["*"]:
        nbgrader(root, "generate_assignment", assignment, "--force")
        nbgrader(root, "generate_solution", assignment, "--force")
