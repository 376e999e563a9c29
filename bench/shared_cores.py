"""First launch with a visitor: the sample adapter trains in its job process while the app answers a RAG
question every 30 s, before and after the cores were shared (core/engine/cpu_budget.py).

"Before" runs the same script on a checkout of an earlier commit (default 282c9a9, where the app and
its job each used every core); "after" on this tree. Also answers the questions with no job running,
for reference. Reports the training's wall time and throughput, the ETA the job showed a minute in
against the time it really took, and the answers' first-token and total times. Each run is its own
process with a throw-away data dir. Prints a table and writes the "shared_cores" section of
bench/results.json. `python -m bench.shared_cores [--before COMMIT]` (~20 min on 2 cores).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run_info import run_info

ROOT = Path(__file__).resolve().parent.parent
EVERY_S = 30
NEW_TOKENS = 96

# Runs inside the checkout being measured; uses only APIs both versions have.
RUN = """
import json, statistics, sys, time
from pathlib import Path
from core.common.vocabulary import Decoding
from core.jobs import get_job
from core.lab import Lab
from core.common.scenario import load_scenario
from core.common.settings import Settings

data_dir, train, every_s, new_tokens = Path(sys.argv[1]), sys.argv[2] == "train", float(sys.argv[3]), int(sys.argv[4])
questions = ["How many days do I have to return my bike?", "Do you ship to Canada?",
             "How long is the warranty on the frame?", "Can I pay in instalments?", "How do I reset the display?"]
lab = Lab(Settings(data_dir=data_dir))
scenario = load_scenario(Path("scenarios/lumen_support"))
lab.ensure_ingested(scenario)
lab.warm_up()
lab.decoding = lambda: Decoding(max_new_tokens=new_tokens, min_new_tokens=new_tokens)

def answer(question):
    started = time.perf_counter()
    result = lab.ask(scenario, "rag", question).collect()
    return result.ttft_s, time.perf_counter() - started

answers, out = [], {}
if not train:
    answers = [answer(q) for q in questions]
else:
    job_id = lab.ensure_adapter_training(scenario).id
    eta_seen, index, next_at = None, 0, time.monotonic() + 5
    while (job := get_job(lab.settings, job_id)).active:
        running_s = time.time() - job.started_at if job.started_at else 0
        if eta_seen is None and running_s >= 60 and job.eta_s:
            eta_seen = (running_s, job.eta_s)
        if time.monotonic() >= next_at:
            answers.append(answer(questions[index % len(questions)]))
            index, next_at = index + 1, next_at + every_s
        time.sleep(0.5)
    took = job.finished_at - job.started_at
    out = {"status": job.status, "training_s": round(took),
           "training_tokens_per_s": lab.active_adapter(scenario).metadata["tokens_per_s"]}
    if eta_seen:
        out["eta_a_minute_in"] = {"at_s": round(eta_seen[0]), "eta_s": round(eta_seen[1]),
                                  "actual_left_s": round(took - eta_seen[0])}
out.update(answers=len(answers),
           answer_first_token_s=round(statistics.median(a[0] for a in answers), 2),
           answer_total_s=round(statistics.median(a[1] for a in answers), 2),
           answer_total_max_s=round(max(a[1] for a in answers), 2))
print("RESULT", json.dumps(out), flush=True)
"""


def run_in(tree: Path, train: bool) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(data_dir), "train" if train else "quiet", str(EVERY_S), str(NEW_TOKENS)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"the run in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="282c9a9", help="commit whose app and job each used every core")
    before = parser.parse_args().before
    checkout = Path(tempfile.mkdtemp(prefix="lab-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(checkout), before], cwd=ROOT, check=True)
    try:
        rows = [
            {"threads": "no job running", **run_in(ROOT, train=False)},
            {"threads": f"every core each ({before})", **run_in(checkout, train=True)},
            {"threads": "shared: the job pauses while the app answers", **run_in(ROOT, train=True)},
        ]
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, check=False)
    results = {**run_info(), "every_s": EVERY_S, "new_tokens": NEW_TOKENS, "rows": rows}
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**existing, "shared_cores": results}, indent=2) + "\n")
    print(render_table(results))


def render_table(r: dict) -> str:
    lines = [
        f"Run {r['date']}, commit {r['commit']}, {r['machine']}; a RAG question ({r['new_tokens']}-token answer) "
        f"every {r['every_s']} s while the first-launch adapter trains.",
        "",
        "| cores | training | training tok/s | ETA a minute in → actual | answers | first token (median) "
        "| answer (median / max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        eta = row.get("eta_a_minute_in")
        eta_text = f"{eta['eta_s']} s → {eta['actual_left_s']} s" if eta else ""
        lines.append(
            f"| {row['threads']} | {row['training_s']} s | {row['training_tokens_per_s']} | {eta_text} | "
            if "training_s" in row
            else f"| {row['threads']} | no job | | | "
        )
        lines[-1] += (
            f"{row['answers']} | {row['answer_first_token_s']} s | {row['answer_total_s']} / "
            f"{row['answer_total_max_s']} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
