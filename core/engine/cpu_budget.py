"""Shares the CPU cores between the Lab's processes: the app's answers first, its jobs after.

Measured on 2 cores:
- Two processes that each run torch on every core slow each other badly: a 5 s answer took 49 s
  while a training micro-batch ran beside it. So a job (training or evaluation, core/jobs.py) pauses
  while the app is answering: before the model's next layer (training, core/training/finetune.py) or decoding
  step (evaluation), and takes every core again when the app is done.
- The app's engine keeps one thread count: a float32 prompt's logits differ in the last bits between
  1 and 2 threads with AVX2 kernels, and the Lab promises the same answer whenever it is asked.
- In one process, only the thread that runs the model (the engine's worker, the training loop) uses
  several threads; any other (embeddings, loading) uses one (`one_thread_here`). A thread that has
  run torch on two threads keeps its OpenMP threads for its whole life, and with more OpenMP threads
  than cores libgomp stops spinning between parallel regions: after indexing the sample in the main
  thread, the engine's worker decoded at 62-66 ms a token against 36 ms when the main thread had
  indexed on one thread (which took 3.1 s instead of 2.5).
The app tells its jobs it is answering by touching a marker file in the data folder while its engine
decodes. `LAB_THREADS` (Settings.threads) sets the model's thread count (default: every core).
"""

import contextlib
import os
import time
from pathlib import Path

ANSWERING_MARKER = ".answering"  # touched by the app's engine while it decodes
FRESH_S = 3.0  # a marker older than this is stale: the app stopped answering
CHECK_EVERY_S = 0.5


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def one_thread_here() -> None:
    """Keeps the calling thread's torch work on one thread: it is not the thread that runs the model."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class CpuBudget:
    """The cores of the thread that runs the model, in one process. `role` is "app" (pages, the CLI) or
    "job": a job waits while the app answers."""

    def __init__(self, data_dir: Path, role: str = "app", fixed: int | None = None, cores: int | None = None):
        self.data_dir = Path(data_dir)
        self.role = role
        self.threads = fixed or cores or available_cores()
        self._announced_at = 0.0

    def apply(self, on_pause=None) -> float:
        """Call between steps from the thread that runs the model: sets its torch threads; the app
        announces that it is answering, a job waits while the app answers (calling `on_pause` once
        when it starts waiting). Returns the seconds waited."""
        import torch

        if torch.get_num_threads() != self.threads:  # torch's count is per thread
            torch.set_num_threads(self.threads)
        if self.role == "app":
            self._announce()
            return 0.0
        if not self.app_is_answering():
            return 0.0
        waited_from = time.monotonic()
        if on_pause:
            on_pause()
        while self.app_is_answering():
            time.sleep(CHECK_EVERY_S / 2)
        return time.monotonic() - waited_from

    def app_is_answering(self) -> bool:
        try:
            return time.time() - (self.data_dir / ANSWERING_MARKER).stat().st_mtime < FRESH_S
        except OSError:
            return False

    def _announce(self) -> None:
        now = time.monotonic()
        if now - self._announced_at < CHECK_EVERY_S:
            return
        self._announced_at = now
        with contextlib.suppress(OSError):  # a read-only or vanished data folder: sharing is best effort
            (self.data_dir / ANSWERING_MARKER).touch()


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512-BF16 or AMX), by its flags."""
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_int8_dot_products() -> bool:
    """Whether this CPU sums int8 products straight into int32 (AVX-512-VNNI), by its flags: fbgemm's
    kernels then take 8-bit inputs without saturating (core.engine.int8_weights)."""
    return "avx512_vnni" in _cpu_flags()
