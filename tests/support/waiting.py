"""The one way a test waits for something another thread or process does: poll a condition until it
holds. The bound only keeps a broken run from hanging the suite; it is not a speed claim (bench/ is)."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout_s: float, what: str | Callable[[], str], every_s: float = 0.5) -> T:
    """Calls `condition` every `every_s` until it returns something truthy, and returns that. After
    `timeout_s` the test fails with `what` (or, when `what` is a function, what it says then: the last
    state seen, say). The condition may raise to stop the wait early, e.g. when a process has exited."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what() if callable(what) else what}")
        time.sleep(every_s)
    return value


def wait_for_job(settings, job_id: int, until: Callable, timeout_s: float = 300):
    """Polls a background job (core.jobs) until `until(job)` holds, and returns the job as it was then."""
    from core.jobs import get_job

    seen: dict = {}

    def reached():
        seen["job"] = get_job(settings, job_id)
        return seen["job"] if until(seen["job"]) else None

    return wait_until(reached, timeout_s, lambda: f"job {job_id} to get there; last seen: {seen.get('job')}")


def ended(job) -> bool:
    """A job that is neither queued nor running: succeeded, failed or cancelled."""
    return not job.active
