"""The server process that forks `course grade`'s local workers, started before anything else.

The server imports the grading modules once for every worker (coursetools.batch); those imports take
seconds, so `course grade` starts it first, before its own imports, and the two run side by side. This
module therefore imports nothing but the standard library: coursetools.course imports nbgrader.
"""

import os
from multiprocessing import forkserver, get_context

# what the server imports before it forks any worker
PRELOAD = ["coursetools.batch"]
# one BLAS/OpenMP thread in the server and its workers: coursetools.course.ONE_BLAS_THREAD (a test checks
# that they agree), read by numpy when the server imports it
ONE_BLAS_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def start_worker_server():
    """Start the server process that forks the local workers, if it is not running (it imports the
    grading modules meanwhile); return its multiprocessing context. A worker asked for before the server's
    imports end waits for them."""
    context = get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    os.environ.update(ONE_BLAS_THREAD)  # before the server imports numpy
    forkserver.ensure_running()
    return context
