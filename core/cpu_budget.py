"""Shares the CPU cores between the Lab's own processes: the app's answers first, then its jobs.

Two processes that each run torch on every core slow each other 2-4x beyond their share (measured on
2 cores: a model decoded 1-2.5 tok/s beside a training job, 2-4x faster with one thread less). So
the app and a job (training or evaluation, core/jobs.py) never both use every core:
- the app's engine takes every core but one while a job runs, and every core otherwise;
- a job takes one core while the app is answering, and every core otherwise, switching between
  training micro-batches or decoding steps (a second or so).
Each side learns about the other from a marker file in the data folder that the other touches: the
app while it has rows to decode, a job while it runs. `LAB_THREADS` (Settings.threads) fixes every
process's thread count instead.
"""

import contextlib
import os
import threading
import time
from pathlib import Path

ANSWERING_MARKER = ".answering"  # touched by the app's engine while it decodes
JOB_MARKER = ".job-running"  # touched by a job process while it runs
FRESH_S = 3.0  # a marker older than this is stale: its process stopped or went idle
CHECK_EVERY_S = 0.5


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class CpuBudget:
    """One process's share of the cores. `role` is "app" (pages, the CLI) or "job". A job uses it as a
    context manager: while inside, a thread announces the job every second (one training micro-batch
    can take longer than FRESH_S), and the entering thread's torch thread count is restored on exit."""

    def __init__(self, data_dir: Path, role: str = "app", fixed: int | None = None, cores: int | None = None):
        self.data_dir = Path(data_dir)
        self.role = role
        self.fixed = fixed
        self.cores = cores or available_cores()
        self._checked_at = 0.0
        self._touched_at = 0.0
        self._threads: int | None = None
        self._stop_announcing: threading.Event | None = None

    def __enter__(self) -> "CpuBudget":
        import torch

        self._threads_before = torch.get_num_threads()  # restored on exit: the caller's thread goes on
        self._stop_announcing = threading.Event()
        self._announce()
        threading.Thread(target=self._announce_until_stopped, daemon=True, name="lab-cpu-budget").start()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        self._stop_announcing.set()
        torch.set_num_threads(self._threads_before)

    def _announce_until_stopped(self) -> None:
        while not self._stop_announcing.wait(1.0):
            self._announce()

    def threads(self) -> int:
        """How many threads this process should use now."""
        if self.fixed:
            return self.fixed
        if self.cores == 1:
            return 1
        if self.role == "app":
            return self.cores - 1 if self._fresh(JOB_MARKER) else self.cores
        return 1 if self._fresh(ANSWERING_MARKER) else self.cores

    def apply(self) -> int:
        """Sets torch's thread count for the calling thread (at most every CHECK_EVERY_S) and announces
        this process's work to the other side; call it between steps."""
        import torch

        now = time.monotonic()
        if now - self._checked_at >= CHECK_EVERY_S:
            self._checked_at = now
            self._announce()
            threads = self.threads()
            if threads != self._threads or threads != torch.get_num_threads():
                torch.set_num_threads(threads)
                self._threads = threads
        return self._threads or torch.get_num_threads()

    def _announce(self) -> None:
        marker = self.data_dir / (ANSWERING_MARKER if self.role == "app" else JOB_MARKER)
        with contextlib.suppress(OSError):  # a read-only or vanished data folder: sharing is best effort
            marker.touch()

    def _fresh(self, name: str) -> bool:
        try:
            return time.time() - (self.data_dir / name).stat().st_mtime < FRESH_S
        except OSError:
            return False
