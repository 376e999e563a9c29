"""First launch with a visitor: the sample adapter trains in its job process while the app answers a RAG
question every 30 s. Run twice: with every process on every core (torch's default, what the Lab did
before core/cpu_budget.py; LAB_THREADS set to the core count) and with the cores shared. Also answers
the same questions with no job running, for reference.

Reports the training's wall time and throughput, the ETA it showed a minute in against the time it
really took, and each answer's first token and total time. Prints a table and writes the
"shared_cores" section of bench/results.json. `python -m bench.shared_cores` (~20 min on 2 cores).
"""

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.run_info import run_info
from core.cpu_budget import available_cores
from core.engine import Decoding
from core.jobs import get_job
from core.lab import Lab
from core.scenario import load_scenario
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUESTIONS = [
    "How many days do I have to return my bike?",
    "Do you ship to Canada?",
    "How long is the warranty on the frame?",
    "Can I pay in instalments?",
    "How do I reset the display?",
]
EVERY_S = 30.0
ANSWER = Decoding(max_new_tokens=96, min_new_tokens=96)  # equal work for every answer


def answer(lab: Lab, scenario, question: str) -> dict:
    lab.decoding = lambda: ANSWER
    started = time.perf_counter()
    result = lab.ask(scenario, "rag", question).collect()
    return {"first_token_s": result.ttft_s, "total_s": round(time.perf_counter() - started, 2)}


def first_launch(shared: bool) -> dict:
    """Trains the first-launch adapter in its job process while a visitor asks every EVERY_S seconds."""
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    if shared:
        os.environ.pop("LAB_THREADS", None)
    else:
        os.environ["LAB_THREADS"] = str(available_cores())  # read by this process's Lab and the job's
    lab = Lab(Settings(data_dir=data_dir))
    scenario = load_scenario(SCENARIO)
    lab.ensure_ingested(scenario)
    lab.warm_up()
    job_id = lab.ensure_adapter_training(scenario)["id"]
    answers, eta_at_one_minute, index = [], None, 0
    next_question = time.monotonic() + 5
    while (job := get_job(lab.settings, job_id))["status"] in ("queued", "running"):
        if job["started_at"] and eta_at_one_minute is None and time.time() - job["started_at"] >= 60 and job["eta_s"]:
            eta_at_one_minute = (time.time() - job["started_at"], job["eta_s"])
        if time.monotonic() >= next_question:
            answers.append(answer(lab, scenario, QUESTIONS[index % len(QUESTIONS)]))
            index += 1
            next_question += EVERY_S
        time.sleep(0.5)
    assert job["status"] == "succeeded", job["message"]
    took = job["finished_at"] - job["started_at"]
    shown = None
    if eta_at_one_minute:
        at, eta = eta_at_one_minute
        shown = {"at_s": round(at), "eta_s": round(eta), "actual_left_s": round(took - at)}
    os.environ.pop("LAB_THREADS", None)
    return {
        "threads": "shared" if shared else "all cores each",
        "training_s": round(took),
        "training_tokens_per_s": lab.active_adapter(scenario).metadata["tokens_per_s"],
        "eta_a_minute_in": shown,
        "answers": len(answers),
        "answer_first_token_s": round(statistics.median(a["first_token_s"] for a in answers), 2),
        "answer_total_s": round(statistics.median(a["total_s"] for a in answers), 2),
        "answer_total_max_s": max(a["total_s"] for a in answers),
    }


def quiet_answers() -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    lab = Lab(Settings(data_dir=data_dir))
    scenario = load_scenario(SCENARIO)
    lab.ensure_ingested(scenario)
    lab.warm_up()
    answers = [answer(lab, scenario, q) for q in QUESTIONS]
    return {
        "threads": "no job running",
        "answer_first_token_s": round(statistics.median(a["first_token_s"] for a in answers), 2),
        "answer_total_s": round(statistics.median(a["total_s"] for a in answers), 2),
        "answer_total_max_s": max(a["total_s"] for a in answers),
    }


def main() -> None:
    rows = [quiet_answers(), first_launch(shared=False), first_launch(shared=True)]
    results = {**run_info(), "cores": available_cores(), "torch_default_threads": torch.get_num_threads(), "rows": rows}
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**existing, "shared_cores": results}, indent=2) + "\n")
    print(render_table(results))


def render_table(r: dict) -> str:
    lines = [
        f"Run {r['date']}, commit {r['commit']}, {r['machine']}; a RAG question ({ANSWER.max_new_tokens}-token "
        f"answer) every {EVERY_S:.0f} s while the first-launch adapter trains.",
        "",
        "| threads | training | training tok/s | ETA shown a minute in → actual | answers | first token (median) "
        "| answer (median / max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        eta = row.get("eta_a_minute_in")
        eta_text = f"{eta['eta_s']} s → {eta['actual_left_s']} s" if eta else ""
        training = f"{row['training_s']} s" if "training_s" in row else "no job"
        lines.append(
            f"| {row['threads']} | {training} | {row.get('training_tokens_per_s', '')} | {eta_text} | "
            f"{row.get('answers', len(QUESTIONS))} | {row['answer_first_token_s']} s | "
            f"{row['answer_total_s']} / {row['answer_total_max_s']} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
