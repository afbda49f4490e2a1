"""A Dask worker made ready to grade while it starts, not in its first job:

    dask worker tcp://scheduler:8786 --nthreads 1 --preload coursetools.distributed

A worker that grades imports the grading modules (nbgrader, nbconvert: seconds) when its first job
arrives, and starts its kernel template (a Python that imports numpy, pandas, scikit-learn and
matplotlib: seconds more) when that job asks for its first kernel; so each worker's first job waits for
both. Preloaded, the worker imports them as it starts and the template imports beside it, before any
job comes. (Local workers need none of this: `course grade` starts their template and a server that
imports the modules once for all of them.)
"""

import os

from traitlets.config import Config

from coursetools.course import ONE_BLAS_THREAD

_template = None  # this worker's kernel template, kept for the worker's life


def dask_setup(worker):
    """Run by Dask in the worker process as it starts: one BLAS thread, the grading modules imported,
    the kernel template started (as root with the sandbox; the grading kernels of this worker then fork
    from it, whatever course the jobs come from, unless its configuration turns `warm` off)."""
    global _template
    os.environ.update(ONE_BLAS_THREAD)
    from coursetools import batch  # noqa: F401  what unpickling the first job would import
    from coursetools.grading import kernel

    if _template is None:
        _template = kernel.start_shared_template(Config())  # its imports run beside the worker's start
