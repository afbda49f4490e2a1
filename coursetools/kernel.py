"""The kernel manager that every grading kernel runs under (nbgrader_config.py names it).

nbgrader limits the time of each cell (c.Execute.timeout) but not of a whole notebook: a notebook of
many slow cells could hold a grader for hours. This manager kills a kernel, with every process it
started, once it has lived for `notebook_timeout` seconds. nbclient then stops with DeadKernelError
and the submission is reported as failed (see coursetools.batch). It also bounds the address space of
the kernel (`memory_limit`, with util-linux's prlimit), so that a growing list ends in a MemoryError in
the student's cell instead of exhausting the machine.
"""

import os
import shutil
import signal
import threading

from jupyter_client.manager import AsyncKernelManager
from traitlets import Float, Integer

# kernel ids that were killed for running past the notebook time limit, in this process
killed_for_time = set()


class GradingKernelManager(AsyncKernelManager):
    notebook_timeout = Float(
        900.0, config=True, help="Seconds a kernel may live before it is killed with its processes."
    )

    memory_limit = Integer(
        4 * 1024**3, config=True, help="Bytes of address space a kernel may use; 0 for no limit."
    )

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        if self.memory_limit and shutil.which("prlimit"):
            command = ["prlimit", f"--as={self.memory_limit}", "--", *command]
        return command

    async def _async_start_kernel(self, **kwargs):
        await super()._async_start_kernel(**kwargs)
        self._deadline = threading.Timer(self.notebook_timeout, self._kill_for_time)
        self._deadline.daemon = True
        self._deadline.start()

    start_kernel = _async_start_kernel

    def _kill_for_time(self):
        pgid = getattr(self.provisioner, "pgid", None)
        if not pgid:
            return
        killed_for_time.add(self.kernel_id)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def _async_cleanup_resources(self, restart=False):
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
        await super()._async_cleanup_resources(restart=restart)

    cleanup_resources = _async_cleanup_resources
