"""Times what a user waits for, against what they would use instead, in one run: decode speed against
llama.cpp and the memory-bandwidth limit (one token a step, as llama.cpp decodes), answers with and without
guessed tokens (core.engine.prompt_lookup), fine-tuned against base, compare-all-four against one mode,
RAG's first token, four concurrent users, cold start and peak memory, and training throughput.

Ratios are measured side by side in this run, medians of RUNS runs after a warm-up. One run measures
one configuration, the model, dtype and quantization the settings give (LAB_MODEL, LAB_DTYPE,
LAB_QUANTIZATION);
llama.cpp runs that model's own bundled GGUF. Prints a table, stores the configuration's figures
under "engine" in bench/results.json and rewrites the table between the `bench:engine` markers in
docs/benchmarks.md with one column per configuration measured. `make bench` runs both bundled
models (and installs llama-cpp-python; without it that row says so). Uses a throw-away data dir (the converted model is linked in) and a briefly trained adapter: LoRA
speed does not depend on what the adapter learned.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from bench.run_info import kernel_cap, machine_kind, run_info
from core.answers.compare import Column
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.common.vocabulary import MODES, Decoding
from core.engine.engine import Row, TextEvent
from core.engine.row_products import OneDnnProduct
from core.jobs import get_job
from core.lab import Lab
from core.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUESTIONS = [
    "How many days do I have to return my bike?",
    "Do you ship to Canada?",
    "How long is the warranty on the frame?",
    "Can I pay in instalments?",
    "How do I reset the display?",
]
RUNS = 3
NEW_TOKENS = 128
FIXED = Decoding(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)  # equal work for every answer
TARGETS = {
    "decode_vs_llama_cpp": (">=", 0.5),
    "finetuned_over_base": (">=", 0.9),
    "compare_four_over_one": ("<=", 1.5),
    "rag_first_token_s": ("<=", 1.0),
    "four_users_over_one": ("<=", 1.8),
    "cold_start_s": ("<=", 10.0),
    "peak_rss_gb": ("<=", 1.5),
}
# The engine's worker runs on every core when no job is training (core.engine.cpu_budget); the main
# thread here is left with one after loading the model, so llama.cpp must not take its count from it.
ENGINE_THREADS = len(os.sched_getaffinity(0))
PEAK_RSS_GB = {"SmolLM2-135M-Instruct": 1.5, "Qwen2.5-Coder-0.5B-Instruct": 3.0}  # issue 22, per model


def targets_for(model_name: str) -> dict:
    return {**TARGETS, "peak_rss_gb": ("<=", PEAK_RSS_GB.get(model_name, TARGETS["peak_rss_gb"][1]))}


def bytes_read_per_token(model: torch.nn.Module) -> int:
    """What one decode step reads: every linear layer's weights (float or int8 with its scales)."""
    total = 0
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            if layer.weight is not None:
                total += layer.weight.numel() * layer.weight.element_size()
            elif isinstance(layer.shared_product, OneDnnProduct):  # core.engine.row_products: repacked
                total += layer.in_features * layer.out_features * layer.shared_product.weight.element_size()
            else:  # core.engine.int8_weights: a byte a weight (and 2 range columns), a double scale a row
                total += (layer.in_features + 2 + 8) * layer.out_features
            if layer.bias is not None:
                total += layer.bias.numel() * layer.bias.element_size()
    return total


def interleaved_medians(first, second, runs: int = RUNS) -> tuple[float, float]:
    """Medians of two measurements taken in turn, so drift in the machine's speed hits both alike."""
    pairs = [(first(), second()) for _ in range(runs)]
    return statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)


def read_bandwidth_gbs() -> float:
    """Streaming read bandwidth: summing a 1 GB array on every core, median of 5."""
    return measured_apart(BANDWIDTH, str(ENGINE_THREADS))


BANDWIDTH = """
import statistics, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
data = torch.ones(256 * 1024 * 1024, dtype=torch.float32)
data.sum()
def once():
    started = time.perf_counter()
    data.sum()
    return data.numel() * 4 / (time.perf_counter() - started) / 1e9
print("RESULT", statistics.median(once() for _ in range(5)), flush=True)
"""


def measured_apart(script: str, *args: str) -> float | None:
    """Runs a measurement in a process of its own and returns the number it prints after RESULT (None
    if it prints none). Run here instead, anything that starts its own OpenMP threads on this process's
    main thread (llama.cpp, torch on every core) leaves them beside the engine worker's: after
    llama.cpp had decoded here, the engine decoded Qwen at 8.8 tok/s against 11.2 (core.engine.cpu_budget)."""
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True)
    result = next((line.split()[1] for line in done.stdout.splitlines() if line.startswith("RESULT")), None)
    if done.returncode != 0 and result is None:
        raise RuntimeError(f"A measurement in its own process failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return None if result in (None, "None") else float(result)


def engine_decode_rate(lab: Lab, messages: list[dict], adapter: str | None) -> float:
    """Tokens per second after the first token, batch 1, NEW_TOKENS forced."""
    first = last = None
    for event in lab.engine.stream_rows([Row(messages, adapter)], FIXED):
        if isinstance(event, TextEvent):
            first = first or time.perf_counter()
            last = time.perf_counter()
    return (NEW_TOKENS - 1) / (last - first)


def answer_rates(lab: Lab, scenario, mode: str, guesses: int) -> tuple[float, float]:
    """Tokens per second after the first token over QUESTIONS' answers as a mode page gets them (its own
    decoding, answers that end on their own), one token a step and with `guesses` guessed tokens checked a
    step (core.engine.prompt_lookup), question by question in turn. The answers are the same (checked)."""
    totals = {0: [0, 0.0], guesses: [0, 0.0]}
    for question in QUESTIONS:
        texts = set()
        for count in totals:
            lab.engine.guesses = count
            answer = lab.ask(scenario, mode, question).collect()
            texts.add(answer.text)
            totals[count][0] += answer.completion_tokens - 1
            totals[count][1] += answer.total_s - answer.ttft_s
        if len(texts) != 1:
            raise SystemExit(f"Guessed tokens changed the {mode} answer to {question!r}: the engine is wrong.")
    lab.engine.guesses = guesses
    return totals[0][0] / totals[0][1], totals[guesses][0] / totals[guesses][1]


def llama_cpp_decode_rate(model_key: str, prompt: str, eos_token_id: int) -> float | None:
    """The same measurement with llama.cpp on the model's bundled GGUF and the same number of threads,
    in a process of its own; None without llama-cpp-python, or where it fails on this CPU (a native build
    died with an illegal instruction on an Intel CPU with AMX: bench.llama_cpp_build)."""
    try:
        return measured_apart(
            LLAMA_CPP, model_key, prompt, str(eos_token_id), str(ENGINE_THREADS), str(NEW_TOKENS), str(RUNS)
        )
    except RuntimeError as failed:
        print(f"llama.cpp not measured: {failed}", file=sys.stderr)
        return None


LLAMA_CPP = """
import statistics, sys, tempfile, time
from pathlib import Path
from core.common.model_catalog import bundled_model
from core.engine.model_store import checked_gguf
model_key, prompt, eos_token_id, threads, new_tokens, runs = sys.argv[1:]
try:
    from llama_cpp import Llama
except ImportError:
    print("RESULT None")
    raise SystemExit
bundled = bundled_model(model_key)
if bundled is None:
    print("RESULT None")
    raise SystemExit
llm = Llama(model_path=str(checked_gguf(bundled, Path(tempfile.gettempdir()))), n_threads=int(threads), n_ctx=2048,
            verbose=False, seed=0)
def once():
    stamps = []
    for _ in llm(prompt, max_tokens=int(new_tokens), temperature=0, logit_bias={int(eos_token_id): -1e9}, stream=True):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])
once()
print("RESULT", statistics.median(once() for _ in range(int(runs))), flush=True)
"""


def first_token_s(lab: Lab, scenario, mode: str, question: str) -> float:
    started = time.perf_counter()
    stream = iter(lab.ask(scenario, mode, question))
    next(stream)
    waited = time.perf_counter() - started
    stream.close()  # the engine drops the row
    return waited


def concurrent_wall(lab: Lab, scenario, questions: list[str]) -> float:
    """Wall time for len(questions) users asking base-mode questions at the same moment."""
    start = threading.Barrier(len(questions))
    errors: list[BaseException] = []

    def user(question: str) -> None:
        try:
            start.wait()
            lab.ask(scenario, "base", question).collect()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=user, args=(q,)) for q in questions]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


COLD_START = """
import sys
from pathlib import Path
from core.lab import Lab
from core.common.scenario import load_scenario
from core.common.settings import Settings
lab = Lab(Settings(data_dir=Path(sys.argv[1])))
scenario = load_scenario(Path(sys.argv[2]))
stream = iter(lab.ask(scenario, "base", sys.argv[3]))
next(stream)
print("FIRST", flush=True)
for _ in stream:
    pass
for mode in ("rag", "finetuned", "hybrid"):
    lab.ask(scenario, mode, sys.argv[3]).collect()
# VmHWM, not getrusage: ru_maxrss survives exec, so it would report the parent's size at fork
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("RSS_KB", peak.split()[1], flush=True)
"""


def cold_start(data_dir: Path, question: str) -> tuple[float, float]:
    """(seconds from process start to the first answer token, peak RSS in GB after all four modes)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as errors:  # a file, not a pipe: a full pipe would stall the child
        child = subprocess.Popen(
            [sys.executable, "-c", COLD_START, str(data_dir), str(SCENARIO), question],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        first, rss_kb = None, None
        for line in child.stdout:
            if line.startswith("FIRST"):
                first = time.perf_counter() - started
            elif line.startswith("RSS_KB"):
                rss_kb = int(line.split()[1])
        if child.wait() != 0 or first is None or rss_kb is None:
            errors.seek(0)
            raise RuntimeError(f"The cold-start process failed (exit {child.returncode}): {errors.read()[-3000:]}")
    return first, rss_kb / 1024 / 1024


def train_in_job(lab: Lab, scenario) -> float:
    """Trains the adapter as the app does, in a job process, and returns the job's wall time. Trained in
    this process instead, the main thread would keep its own OpenMP threads beside the engine worker's
    (core.engine.cpu_budget): every step after it measured 1.3-1.8x slower (Qwen, 100 -> 137 ms float32,
    39 -> 68 ms int8), a cost the app never pays."""
    job_id = lab.submit_training(scenario, TrainConfig(max_steps=6, batch_size=4, val_fraction=0.0))
    while (job := get_job(lab.settings, job_id)).active:
        time.sleep(0.5)
    if job.status != "succeeded":
        raise SystemExit(f"Training the bench's adapter failed: {job.message}")
    return job.finished_at - job.started_at


def meets(targets: dict, name: str, value: float | None) -> bool | None:
    if value is None:
        return None
    sign, target = targets[name]
    return value >= target if sign == ">=" else value <= target


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    settings = Settings(data_dir=data_dir)
    scenario = load_scenario(SCENARIO)
    lab = Lab(settings)
    lab.ensure_ingested(scenario)
    train_wall = train_in_job(lab, scenario)
    adapter = lab.load_adapter(scenario)
    engine = lab.engine
    messages = [{"role": "system", "content": scenario.system_prompt}, {"role": "user", "content": QUESTIONS[0]}]
    lab.compare(scenario, [Column(mode) for mode in MODES], "Warm up.", decoding=Decoding(max_new_tokens=4)).collect()

    bandwidth = read_bandwidth_gbs()
    weight_bytes = bytes_read_per_token(engine.model)
    guesses = engine.guesses
    guessing = {mode: answer_rates(lab, scenario, mode, guesses) for mode in ("base", "rag")}
    # Everything else one token a step, as llama.cpp decodes and as the measures were defined. Guesses
    # hold best where an answer repeats itself, and NEW_TOKENS forced past an answer's end repeat: the
    # one-row measures would gain more than answers that end on their own do (the line above).
    engine.guesses = 0
    base_rate, tuned_rate = interleaved_medians(
        lambda: engine_decode_rate(lab, messages, None), lambda: engine_decode_rate(lab, messages, adapter.engine_name)
    )
    prompt = engine.tokenizer.decode(engine.encode(messages, NEW_TOKENS)[0])
    llama_rate = llama_cpp_decode_rate(settings.model, prompt, engine.tokenizer.eos_token_id)

    lab.decoding = lambda: FIXED  # single answers use the same fixed-length decoding as the batch
    columns = [Column(mode) for mode in MODES]
    # in turn, as the decode rates above: this VM's speed drifts by 10-25% within minutes, and one mode
    # measured in a slow minute and compare in a fast one (or the other way round) moved the ratio by 0.2
    pairs = [
        (
            _wall(lambda: lab.ask(scenario, "base", QUESTIONS[0]).collect()),
            compare_times(lab, scenario, columns, QUESTIONS[0]),
        )
        for _ in range(RUNS)
    ]
    one_mode = statistics.median(one for one, _ in pairs)
    four_modes, first_column, last_column = (statistics.median(run[i] for _, run in pairs) for i in range(3))
    one_user, four_users = interleaved_medians(
        lambda: concurrent_wall(lab, scenario, QUESTIONS[:1]), lambda: concurrent_wall(lab, scenario, QUESTIONS[:4]), 2
    )
    del lab.decoding
    rag_first = statistics.median(first_token_s(lab, scenario, "rag", q) for q in QUESTIONS)
    # medians like every other measure: one cold start swung by 2 s between runs of the same commit
    starts = [cold_start(data_dir, QUESTIONS[0]) for _ in range(RUNS)]
    cold, peak_gb = statistics.median(s[0] for s in starts), statistics.median(s[1] for s in starts)

    ratios = {
        "decode_vs_llama_cpp": round(base_rate / llama_rate, 2) if llama_rate else None,
        "finetuned_over_base": round(tuned_rate / base_rate, 2),
        "compare_four_over_one": round(four_modes / one_mode, 2),
        "rag_first_token_s": round(rag_first, 2),
        "four_users_over_one": round(four_users / one_user, 2),
        "cold_start_s": round(cold, 1),
        "peak_rss_gb": round(peak_gb, 2),
    }
    knowledge_base = _last_section("knowledge_base")
    targets = targets_for(engine.model_name)
    results = {
        **run_info(),
        "model": engine.model_name,
        "quantization": engine.quantization,
        "dtype": str(engine.dtype).removeprefix("torch."),
        "kernels": kernel_cap(),
        "torch_threads": ENGINE_THREADS,
        "new_tokens": NEW_TOKENS,
        "runs": RUNS,
        "read_bandwidth_gb_s": round(bandwidth, 1),
        "weights_mb": round(weight_bytes / 1e6),
        "base_tok_s": round(base_rate, 1),
        "base_share_of_bandwidth_limit": round(weight_bytes * base_rate / (bandwidth * 1e9), 2),
        "finetuned_tok_s": round(tuned_rate, 1),
        "guessed_tokens": guesses,
        "answer_tok_s_plain_guessed": {mode: [round(rate, 1) for rate in rates] for mode, rates in guessing.items()},
        "llama_cpp_tok_s": round(llama_rate, 1) if llama_rate else None,
        "one_mode_wall_s": round(one_mode, 2),
        "compare_four_wall_s": round(four_modes, 2),
        "compare_first_text_s": [round(first_column, 2), round(last_column, 2)],
        "one_user_wall_s": round(one_user, 2),
        "four_users_wall_s": round(four_users, 2),
        "training_tokens_per_s": adapter.metadata["tokens_per_s"],
        "training_wall_s": round(train_wall, 1),
        "ratios": ratios,
        "targets": {name: list(target) for name, target in targets.items()},
        "targets_met": {name: meets(targets, name, value) for name, value in ratios.items()},
    }
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    configurations = existing.get("engine", {})
    if "ratios" in configurations:  # the one-configuration layout before issue 22
        configurations = {}
    # one column per configuration and CPU: a run on another kind of CPU adds its own (earlier keys had neither)
    configurations = {f"{column_name(r)} · {machine_kind(r)}": r for r in [*configurations.values(), results]}
    out.write_text(json.dumps({**existing, "engine": configurations}, indent=2) + "\n")
    table = render_table(list(configurations.values()), knowledge_base)
    print(table)
    _write_docs(table)
    print(f"wrote {out} and docs/benchmarks.md", file=sys.stderr)


def compare_times(lab: Lab, scenario, columns: list[Column], question: str) -> tuple[float, float, float]:
    """(wall, first text of the first column to show any, first text of the last column) of one compare."""
    started = time.perf_counter()
    first_text: dict[int, float] = {}
    for piece in lab.compare(scenario, columns, question, decoding=FIXED):
        if piece.text:
            first_text.setdefault(piece.column, time.perf_counter() - started)
    return time.perf_counter() - started, min(first_text.values()), max(first_text.values())


def _wall(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _last_section(name: str) -> dict:
    out = ROOT / "bench" / "results.json"
    return json.loads(out.read_text()).get(name, {}) if out.exists() else {}


def column_name(r: dict) -> str:
    """A configuration's name: the model, its weights (the dtype, or int8) and kernels held to an older CPU's."""
    weights = "int8 weights" if r["quantization"] == "int8" else r["dtype"]
    kernels = f" · {r['kernels']} kernels" if r.get("kernels") else ""  # bench.run_info.kernel_cap
    return f"{r['model']} · {weights}{kernels}"


def render_table(configurations: list[dict], kb: dict) -> str:
    """One table per kind of CPU, each with one column per configuration (model · weights), one row per
    measure: the ratios compare within a machine, never across."""
    kinds: dict[str, list[dict]] = {}
    for r in configurations:
        kinds.setdefault(machine_kind(r), []).append(r)
    lines = []
    for kind, rows in kinds.items():
        lines += [f"**{kind}**", "", *_machine_table(rows), ""]
    if kb:
        level = kb["levels"][min(kb["levels"], key=int)]
        lines.append(
            f"Knowledge base (`bench.kb_time`, {kb['date'][:10]}): ingest {kb['ingest_chunks_per_s_overall']} "
            f"chunks/s; search p50 / p95 at {level['chunks']} chunks "
            f"{level['latency']['similarity']['p50_ms']} / {level['latency']['similarity']['p95_ms']} ms."
        )
    return "\n".join(lines).rstrip()


def _machine_table(configurations: list[dict]) -> list[str]:
    """The table of one kind of CPU's configurations, and a line on each run."""

    def verdict(r: dict, name: str) -> str:
        return {True: "met", False: "**missed**", None: "not measured"}[r["targets_met"][name]]

    def target(r: dict, name: str) -> str:
        sign, value = r["targets"][name]
        return f"{'≥' if sign == '>=' else '≤'} {value}"

    def llama(r: dict) -> str:
        return f"{r['llama_cpp_tok_s']} tok/s" if r["llama_cpp_tok_s"] else "llama.cpp not measured"

    measures = [
        (
            "1. base decode ÷ llama.cpp (batch 1, 128 tokens, one token a step)",
            "decode_vs_llama_cpp",
            lambda r: f"{r['base_tok_s']} ÷ {llama(r)} = **{r['ratios']['decode_vs_llama_cpp']}**",
        ),
        (
            "   answers as a page gets them, tok/s: one token a step → checking guessed tokens, base / RAG",
            None,
            lambda r: (
                " / ".join(
                    f"{plain} → {guessed} (×{guessed / plain:.2f})"
                    for plain, guessed in r["answer_tok_s_plain_guessed"].values()
                )
                if "answer_tok_s_plain_guessed" in r
                else "—"
            ),
        ),
        (
            "   bytes read per token × decode rate ÷ read bandwidth",
            None,
            lambda r: (
                f"{r['weights_mb']} MB × {r['base_tok_s']} ÷ {r['read_bandwidth_gb_s']} GB/s = "
                f"{r['base_share_of_bandwidth_limit']}"
            ),
        ),
        (
            "2. fine-tuned decode ÷ base decode (one token a step)",
            "finetuned_over_base",
            lambda r: f"{r['finetuned_tok_s']} ÷ {r['base_tok_s']} = **{r['ratios']['finetuned_over_base']}**",
        ),
        (
            "3. compare all four ÷ one mode (wall)",
            "compare_four_over_one",
            lambda r: (
                f"{r['compare_four_wall_s']} ÷ {r['one_mode_wall_s']} s = **{r['ratios']['compare_four_over_one']}**"
            ),
        ),
        (
            "   compare: first text of the first / last column (s)",
            None,
            lambda r: " / ".join(str(s) for s in r["compare_first_text_s"]) if "compare_first_text_s" in r else "—",
        ),
        (
            "4. RAG time to first token, median of 5 (s)",
            "rag_first_token_s",
            lambda r: f"**{r['ratios']['rag_first_token_s']}**",
        ),
        (
            "5. four users at once ÷ one user (wall)",
            "four_users_over_one",
            lambda r: f"{r['four_users_wall_s']} ÷ {r['one_user_wall_s']} s = **{r['ratios']['four_users_over_one']}**",
        ),
        ("6. cold start to first answer token (s)", "cold_start_s", lambda r: f"**{r['ratios']['cold_start_s']}**"),
        ("   peak RSS, all four modes used (GB)", "peak_rss_gb", lambda r: f"**{r['ratios']['peak_rss_gb']}**"),
        (
            "7. LoRA training, 6 steps (r=16, default layers: the upper half)",
            None,
            lambda r: f"{r['training_tokens_per_s']} tok/s ({r['training_wall_s']} s)",
        ),
    ]
    lines = [
        "| measure | " + " | ".join(column_name(r) for r in configurations) + " |",
        "|---|" + "---|" * len(configurations),
    ]
    for label, name, cell in measures:
        cells = [cell(r) + (f" ({target(r, name)}: {verdict(r, name)})" if name else "") for r in configurations]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in configurations:
        lines.append(
            f"- {column_name(r)}: run {r['date']}, commit {r['commit']}, {r['machine']}, "
            f"{r.get('cpu', 'CPU not recorded')}, {r['dtype']}, {r['torch_threads']} threads, "
            f"medians of {r['runs']} runs; GPU: none."
        )
    return lines


def _write_docs(table: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    text = docs.read_text()
    block = f"<!-- bench:engine -->\n{table}\n<!-- /bench:engine -->"
    if "<!-- bench:engine -->" in text:
        text = re.sub(r"<!-- bench:engine -->.*?<!-- /bench:engine -->", lambda _: block, text, flags=re.S)
    else:
        text += f"\n## Engine: `make bench`\n\n{block}\n"
    docs.write_text(text)


if __name__ == "__main__":
    main()
