"""Writes to SQLite what the app writes, through the same core functions, for the reliability tests: arena
votes, evaluation runs, and background-job rows (queued, phase, progress, finished). Also reads it all back.

    python -m tests.support.db_worker DATA_DIR write WRITER ROUNDS   # says "ready", waits for a "go" line, writes
    python -m tests.support.db_worker DATA_DIR read                  # prints everything, as JSON

(The app keeps chats in the browser session, not in SQLite, so there are no chat rows to write.)
"""

import json
import sys
from pathlib import Path

from core import jobs
from core.common.scenario import Scenario
from core.common.settings import get_settings
from core.evaluation.arena import Vote, list_votes, record_vote
from core.evaluation.eval_store import list_runs, load_run, save_run
from core.training.finetune import Progress

SCENARIO = Scenario("dbtest", "DB test", "", "You are a helpful assistant.", None, Path("/nowhere/dbtest"))


def settings_for(data_dir: Path):
    return get_settings().model_copy(update={"data_dir": Path(data_dir)})


def write_rows(data_dir: Path, writer: str, rounds: int) -> None:
    """`rounds` times: a vote, an evaluation run, and a job from queued to succeeded (six transactions)."""
    settings = settings_for(data_dir)
    for n in range(rounds):
        entries = [
            {"label": label, "mode": mode, "text": f"{writer} {n}"} for label, mode in (("A", "rag"), ("B", "base"))
        ]
        record_vote(data_dir, Vote(f"{writer}-{n}", SCENARIO.name, f"question {n}", "m", {"seed": n}, entries, "A"))
        result = {"scenario": SCENARIO.name, "settings": {"modes": ["base"], "questions": 1}, "writer": writer, "n": n}
        save_run(data_dir, result, f"{writer} run {n}")
        job = jobs.record_queued_job(settings, "eval", SCENARIO, {"writer": writer, "n": n})
        jobs.set_phase(settings, job, "Question 1 of 1")
        jobs.record_progress(settings, job, Progress(1, 1, 0, 0.5, None, 10.0, 0.0))
        jobs.finish(settings, job, "succeeded", f"{writer} {n} done")


def read_rows(data_dir: Path) -> dict:
    """Everything the pages show from these tables, as JSON-ready values."""
    return {
        "votes": [v.to_dict() for v in list_votes(data_dir, SCENARIO.name)],
        "runs": [load_run(data_dir, r.id) for r in list_runs(data_dir, SCENARIO.name)],
        "jobs": [job.to_dict() for job in jobs.list_jobs(settings_for(data_dir), SCENARIO.name, limit=10_000)],
    }


def main() -> None:
    data_dir, command = Path(sys.argv[1]), sys.argv[2]
    if command == "read":
        print(json.dumps(read_rows(data_dir)))
        return
    print("ready", flush=True)
    sys.stdin.readline()
    write_rows(data_dir, sys.argv[3], int(sys.argv[4]))


if __name__ == "__main__":
    main()
