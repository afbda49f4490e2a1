"""How much of a submission is graded: files within a size and a count, so that what students hand in (a
data set, a 10 GB sparse file, thousands of files, a notebook of hundreds of MB of outputs) never reaches
the grader's memory, the kernel or autograded/. Files are measured by their size as the file system gives
it, without reading them; both grading paths apply them through coursetools.grading.intake.
"""

import os
import stat
from pathlib import Path

from traitlets import Integer
from traitlets.config import Configurable

from coursetools.findings import Finding


class SubmissionLimits(Configurable):
    """Set in nbgrader_config.py, e.g. c.SubmissionLimits.max_bytes = 100 * 2**20."""

    max_bytes = Integer(50 * 2**20, help="Bytes of a submission's files together, its notebooks first: a "
                                         "notebook beyond it is graded as the release (zero), other files "
                                         "beyond it are left out").tag(config=True)
    max_files = Integer(500, help="Files in a submission, its notebooks first: the rest are left out"
                        ).tag(config=True)

    def left_out(self, folder, notebooks):
        """[(relative path, size)] of the regular files under `folder` that grading leaves out: the
        notebooks named in `notebooks` are counted first, then the other files in order of their path."""
        folder = Path(folder)
        files = []
        for path in folder.rglob("*"):  # rglob enters no linked folder; links are refused elsewhere
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                relative = path.relative_to(folder).as_posix()
                files.append((relative not in notebooks, relative, info.st_size))
        total, kept, left_out = 0, 0, []
        for _, relative, size in sorted(files):
            if total + size > self.max_bytes or kept >= self.max_files:
                left_out.append((relative, size))
            else:
                total, kept = total + size, kept + 1
        return left_out

    def finding(self, left_out, notebooks):
        """What TAs and the student read about the files left out, with their sizes."""
        names = [f"{printable(name)} ({size_text(size)})" for name, size in left_out[:5]]
        listed = ", ".join(names) + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else "")
        release = ", ".join(printable(name) for name, _ in left_out if name in notebooks)
        rule = f"{size_text(self.max_bytes)} in {self.max_files} files"
        return Finding(
            "too-big", f"left out of grading, over the limit of a submission ({rule}): {listed}"
                       + (f"; {release} graded as the release (zero)" if release else ""),
            student=f"A submission may hold {rule}: grading left out {listed}"
                    + (f", so {release} was graded as the untouched release and scored zero" if release
                       else "") + ".")


def printable(name):
    """A file name as text that any database stores: bytes that are not UTF-8 written as escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def size_text(size):
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"
