"""The judge's line to the student's kernel, and what of that kernel the judge holds.

kernel.py starts the kernel in its sandbox; here is the judge's side of the conversation with it, apart
from the tests it serves: one request at a time, each under a time limit and an answer budget, the
kernel's requests for uses of the tests' objects served while a call runs (on its stdin channel), a dead
or stuck kernel told apart from a slow one. StudentFunction and KernelObject stand, in the judge, for
what lives in the kernel: calling one asks the kernel, through the Judge.
"""

import json
import secrets
import time
from queue import Empty

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_core.utils import run_sync

from coursetools.grading.kernel import wait_until_ready
from coursetools.student import wire


class KernelGone(Exception):
    """The student's kernel died, or stopped answering: no later call can be answered."""


class Kernel:
    """The judge's own line to the student's kernel: one request at a time, each with a time limit. Code
    (the shim's installation) goes as an execute request; calls go as messages of a Jupyter comm that the
    shim opens, which skip the kernel's cell machinery (about 3 ms a call instead of 9)."""

    def __init__(self, km, timeout, max_bytes, transcript=None):
        self.timeout, self.max_bytes, self._km, self._transcript = timeout, max_bytes, km, transcript
        self.client = BlockingKernelClient()
        self.client.load_connection_info(km.get_connection_info())  # a session of its own: each client
        # checks the signatures it has seen, so two clients sharing one session would drop each other's
        self.client.start_channels()
        self._wait_for_ready(timeout)  # iopub subscribed: no answer is missed
        self.gone = ""  # why the kernel can answer no more
        self._comm = self._call = None
        self._busy = False  # a call was sent and the kernel has not finished it
        self._iopub, self._stdin = self.client.iopub_channel.socket, self.client.stdin_channel.socket
        self._poller = zmq.Poller()
        self._poller.register(self._iopub, zmq.POLLIN)
        self._poller.register(self._stdin, zmq.POLLIN)

    def _wait_for_ready(self, timeout):
        try:
            run_sync(wait_until_ready)(self.client, timeout, self._alive)
        except RuntimeError:
            raise KernelGone("the kernel did not answer the judge") from None

    def run(self, code):
        """Run `code` in the kernel; raise if it fails."""
        self._note(code)
        msg_id = self.client.execute(code, silent=False, store_history=False, allow_stdin=False,
                                     stop_on_error=False)
        answer = self._wait(msg_id, self.timeout)
        if answer is not None:
            raise RuntimeError(f"the kernel did not run the judge's code: {answer}")

    def open(self, target):
        """Open the comm to the shim's target; calls go through it."""
        self._comm = secrets.token_hex(16)
        content = {"comm_id": self._comm, "target_name": target, "data": {}}
        message = self.client.session.msg("comm_open", content)
        self.client.shell_channel.send(message)
        self._wait(message["header"]["msg_id"], self.timeout)

    def converse(self, call, serve, deadline, nested=False):
        """Send a call (a JSON text) to the shim and carry out, with serve(use) -> reply, every use that the
        kernel asks for until it answers; return its answer (parsed within the answer budget). A nested call
        (made while a use is carried out) goes as the reply to the kernel's input request that waits."""
        self._note(call)
        if nested:
            self.client.input(call)
            return self._serve_until_answered(serve, deadline, nested)
        message = self.client.session.msg("comm_msg", {"comm_id": self._comm, "data": {"request": call}})
        self.client.shell_channel.send(message)
        self._call, self._busy = message["header"]["msg_id"], True
        try:
            return self._serve_until_answered(serve, deadline, nested)
        finally:
            if self._busy and not self.gone:  # given up mid-call: the kernel may wait for a reply
                self._interrupt(self._call)

    def _serve_until_answered(self, serve, deadline, nested):
        answer = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._interrupt(self._call)
                raise TimeoutError(f"did not answer within {self.timeout:g} s")
            ready = dict(self._poller.poll(min(200, int(1000 * left) + 1)))
            if not ready and not self._alive():
                self.gone = "the kernel died (a crash, os._exit, exit() or memory)"
                raise KernelGone(self.gone)
            if self._stdin in ready:  # first: a use's nested calls read iopub, so poll again after it
                try:
                    message = self.client.stdin_channel.get_msg(timeout=0)
                except Empty:
                    continue
                if message["msg_type"] != "input_request":
                    continue
                asked = self._parse(message["content"].get("prompt"))
                if nested and set(asked) == {"answer"}:
                    return asked["answer"]
                if set(asked) != {"use"}:
                    raise ValueError("answered something that is neither an answer nor a use")
                reply = json.dumps(serve(asked["use"]), allow_nan=True)
                self._note(reply)
                self.client.input(reply)
                continue
            if self._iopub in ready:
                try:
                    message = self.client.iopub_channel.get_msg(timeout=0)
                except Empty:
                    continue
                if message["parent_header"].get("msg_id") != self._call:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "comm_msg" and content.get("comm_id") == self._comm:
                    answer = content.get("data", {}).get("answer")
                elif kind == "error":
                    answer = json.dumps({"error": {"kind": "silent"}})
                elif kind == "status" and content.get("execution_state") == "idle":
                    self._busy = False
                    if nested:
                        raise ValueError("ended its call while the tests' object was in use")
                    return self._parse(answer) if answer is not None else {"error": {"kind": "silent"}}

    def _parse(self, text):
        """A JSON text from the kernel, bounded in size and in what it makes."""
        if not isinstance(text, str) or len(text) > self.max_bytes:
            raise ValueError(f"answered something else than at most {self.max_bytes:,} bytes of text")
        parsed = wire.parse(text, self.max_bytes)
        if type(parsed) is not dict:
            raise ValueError("answered something that is not an answer")
        return parsed

    def _note(self, text):
        if self.gone:
            raise KernelGone(self.gone)
        if self._transcript:
            with open(self._transcript, "a") as transcript:
                transcript.write(f"{text}\n")

    def _wait(self, msg_id, timeout):
        """Wait until the kernel is done with the message `msg_id`; return the text of an error it raised,
        or None."""
        deadline = time.monotonic() + timeout
        answer = None
        while True:
            if time.monotonic() > deadline:
                self._interrupt(msg_id)
                raise TimeoutError(f"did not answer within {timeout:g} s")
            try:
                message = self.client.get_iopub_msg(timeout=0.2)
            except Exception:  # queue.Empty: nothing yet
                if not self._alive():
                    self.gone = "the kernel died (a crash, os._exit, exit() or memory)"
                    raise KernelGone(self.gone) from None
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "error":
                answer = f"{content.get('ename', '')}: {content.get('evalue', '')}"
            elif kind == "status" and content.get("execution_state") == "idle":
                return answer

    def _alive(self):
        process = getattr(self._km.provisioner, "process", None)
        return process is not None and process.poll() is None

    def _interrupt(self, msg_id):
        """Interrupt a call that ran past its time; a kernel that stays busy can answer no more."""
        self.client.control_channel.send(self.client.session.msg("interrupt_request", {}))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                message = self.client.get_iopub_msg(timeout=0.2)
            except Exception:
                continue
            if (message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "status"
                    and message["content"].get("execution_state") == "idle"):
                self._busy = False
                return
        self.gone = "a call ran past the time limit and the kernel ignored the interrupt"

    def close(self):
        self.client.stop_channels()


class StudentFunction:
    """A name that the student's solution defines: in the judge, calling it calls the student's function
    in the kernel (checks.call hands it its options)."""

    def __init__(self, name, judge):
        self.__name__, self._judge = name, judge

    def __call__(self, *args, **kwargs):
        return self.__call_in_kernel__(args, kwargs)

    def __call_in_kernel__(self, args, kwargs, seed=0, allow_warnings=True, replace=None,
                           inputs_after=False):
        return self._judge.ask(self.__name__, self.__name__, args, kwargs, seed, allow_warnings, replace,
                               inputs_after)

    def __repr__(self):
        return f"<the student's {self.__name__}>"


class KernelObject:
    """An object of the student's kernel that a call gave the judge (the student's make_model, a model
    the student made): calling it, if it can be called, calls it there. It is nothing else here: a check
    that asks whether it is one of the tests' objects learns that it is not."""

    def __init__(self, judge, number, can_call):
        self._judge, self._number, self._can_call = judge, number, can_call

    def __call__(self, *args, **kwargs):
        if not self._can_call:
            raise TypeError("an object of the student's that cannot be called")
        return self._judge.ask({"$kernel": {"number": self._number}}, "a function of yours", args, kwargs)

    def __repr__(self):
        return "<an object of the student's kernel>"
