"""Test evaluations in a forked helper process, so that they do not share the interpreter lock
with the training loop (used by the fast kernel, ``fast.run_fast``, when ``workers`` > 1).

The parent forks once, after the per-replica setup. The child inherits everything it needs
(the data, keys and training setup) and builds the test set, then evaluates the states the
parent hands it, in order. The states go through anonymous shared memory (a ring of slots,
so memory stays bounded however many evaluations a run has); 8-byte messages through two
pipes say which evaluation is ready (parent to child) and which is done (child to parent).
The results come back through shared memory too. Nothing is pickled.

Forking is safe only in a process with one thread (locks held by other threads at the moment
of the fork stay locked in the child), so ``can_fork`` asks for exactly one, on Linux;
elsewhere (a notebook kernel has several threads; Windows has no fork; macOS's system
libraries are not fork-safe) the kernel uses a helper thread instead. The child never
returns into the caller's code: it leaves with ``os._exit``, and an exception in it is sent
back as text and raised in the parent.
"""

from __future__ import annotations

import mmap
import os
import signal
import sys
import threading
import traceback

import numpy as np

__all__ = ["can_fork", "ForkedEvaluations"]

_ERROR = (2**64 - 1).to_bytes(8, "little")  # an evaluation number that cannot occur
RING_BYTES = 64 * 2**20  # shared memory for states in flight (at least 8 slots)


def can_fork() -> bool:
    """True where a helper process can be forked safely: Linux (macOS has fork() too, but
    its system libraries, NumPy's Accelerate among them, are not safe to use after it) and
    a single thread."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


class ForkedEvaluations:
    """A child process that builds the test set with ``build()`` and then computes
    ``evaluate(test, Z, qs, ks, vs) -> (loss, error)`` (two arrays of shape (R,)) for each
    state submitted, numbered 0, 1, ... ``n_evals - 1`` in order.

    ``Z`` has shape ``state_shape``; ``qs`` and ``ks`` (R, m_k) and ``vs`` (R,) are the
    signal parts the test logits need. The child sees exactly the submitted values, copied
    into shared memory, so its results are those the parent would compute."""

    def __init__(self, build, evaluate, n_evals: int, state_shape: tuple, R: int, m_k: int):
        self.n_evals = n_evals
        sizes = (int(np.prod(state_shape)), R * m_k, R * m_k, R)
        self._sizes, self._state_shape, self._R, self._m_k = sizes, state_shape, R, m_k
        per_slot = sum(sizes)
        self.slots = max(1, min(n_evals, max(8, RING_BYTES // (8 * per_slot))))
        ring = mmap.mmap(-1, 8 * per_slot * self.slots)  # MAP_SHARED | MAP_ANONYMOUS
        out = mmap.mmap(-1, 8 * 2 * R * max(n_evals, 1))
        self._ring = np.frombuffer(ring, np.float64).reshape(self.slots, per_slot)
        self._out = np.frombuffer(out, np.float64).reshape(max(n_evals, 1), 2, R)
        self._submitted = self._done = 0
        ready_r, self._ready_w = os.pipe()
        self._done_r, done_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(self._ready_w)
            os.close(self._done_r)
            self._child(build, evaluate, ready_r, done_w)
        os.close(ready_r)
        os.close(done_w)

    # ------------------------------------------------------------ the parent's side

    def submit(self, Z: np.ndarray, qs: np.ndarray, ks: np.ndarray, vs: np.ndarray) -> None:
        """Hand over the next state (waits only if every slot of the ring is in use)."""
        k = self._submitted
        while self._done <= k - self.slots:  # the slot's previous state is not done yet
            self._wait_one()
        row = self._ring[k % self.slots]
        at = 0
        for x, size in zip((Z, qs, ks, vs), self._sizes):
            row[at:at + size] = x.reshape(-1)
            at += size
        try:
            _write(self._ready_w, k.to_bytes(8, "little"))
        except BrokenPipeError:  # the child has ended: say why
            while True:
                self._wait_one()
        self._submitted += 1

    def results(self) -> np.ndarray:
        """Wait for every evaluation; (n_evals, 2, R): loss and error of each."""
        os.close(self._ready_w)  # end of input: the child exits when it has done all
        self._ready_w = None
        while self._done < self._submitted:
            self._wait_one()
        self._reap(expect_exit=True)
        return self._out[:self.n_evals].copy()

    def abort(self) -> None:
        """Stop the child (the parent failed or was interrupted); safe to call twice."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(expect_exit=False)

    def _wait_one(self) -> None:
        msg = _read(self._done_r, 8)
        if msg == _ERROR:
            length = int.from_bytes(_read(self._done_r, 8), "little")
            text = _read(self._done_r, length).decode("utf-8", "replace")
            self._reap(expect_exit=False)
            raise RuntimeError("a test evaluation failed in the helper process:\n" + text)
        if len(msg) < 8:
            self._reap(expect_exit=False)
            raise RuntimeError("the helper process of the test evaluations ended without "
                               "finishing them (killed, or out of memory?)")
        self._done += 1

    def _reap(self, expect_exit: bool) -> None:
        if self.pid is None:
            return
        for fd in (self._ready_w, self._done_r):
            if fd is not None:
                os.close(fd)
        self._ready_w = self._done_r = None
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if expect_exit and status != 0:
            raise RuntimeError(f"the helper process of the test evaluations exited with "
                               f"status {status}")

    # ------------------------------------------------------------ the child's side

    def _child(self, build, evaluate, ready_r: int, done_w: int) -> None:
        code = 1
        try:
            # the parent owns the terminal's Ctrl-C; it stops the child itself (abort)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            test = build()
            R, m_k = self._R, self._m_k
            while True:
                msg = _read(ready_r, 8)
                if len(msg) < 8:  # end of input
                    break
                k = int.from_bytes(msg, "little")
                row = self._ring[k % self.slots]
                parts, at = [], 0
                for size in self._sizes:
                    parts.append(row[at:at + size])
                    at += size
                Z = parts[0].reshape(self._state_shape)
                loss, error = evaluate(test, Z, parts[1].reshape(R, m_k),
                                       parts[2].reshape(R, m_k), parts[3])
                self._out[k, 0] = loss
                self._out[k, 1] = error
                _write(done_w, msg)
            code = 0
        except BaseException:
            text = traceback.format_exc().encode("utf-8", "replace")
            try:
                _write(done_w, _ERROR + len(text).to_bytes(8, "little") + text)
            except OSError:
                pass
        finally:
            os._exit(code)


def _read(fd: int, n: int) -> bytes:
    """Exactly n bytes, or fewer at the end of the stream."""
    chunks, left = [], n
    while left:
        b = os.read(fd, left)
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
