"""Command line: prepare, validate, ingest, train, ask, compare (and train-job, the body of a background
training process)."""

import argparse
import json
import sys
from pathlib import Path

from core.adapters import AdapterNotReady
from core.model_store import MissingModelError
from core.scenario import ScenarioError, load_scenario, validate_scenario
from core.settings import get_settings

MODES = ("base", "rag", "finetuned", "hybrid")  # as core.modes.MODES, without importing the model stack


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ingest(lab, scenario) -> None:
    report = lab.ensure_ingested(scenario, lambda done, total, name: _say(f"  [{done}/{total}] {name}"))
    _say(
        f"Knowledge base {scenario.name}: {len(report.added)} added or changed, {len(report.unchanged)} unchanged, "
        f"{report.chunks_added} chunks added in {report.seconds:.1f} s"
    )
    for name, reason in report.failed.items():
        _say(f"  skipped {name}: {reason}")


def _lab():
    from core.lab import Lab  # heavy imports (torch, transformers, chromadb) only for commands that need them

    return Lab(get_settings())


def _train(lab, scenario) -> None:
    from core.finetune import TrainConfig, train_adapter

    def show(p) -> None:
        val = f", val loss {p.val_loss:.3f}" if p.val_loss is not None else ""
        _say(
            f"  step {p.step}/{p.total_steps} (epoch {p.epoch}) loss {p.loss:.3f}{val}, {p.tokens_per_s:.0f} tok/s, ETA {p.eta_s:.0f} s"
        )

    _say(f"Training a LoRA adapter for {scenario.name} ...")
    info = train_adapter(lab.settings, scenario, TrainConfig(), on_progress=show)
    _say(f"Adapter {info.name} published in {info.metadata['duration_s']} s: {info.path}")


def cmd_prepare(args) -> int:
    """Converts the bundled model once and indexes the scenario: what `make` runs before the app starts."""
    lab = _lab()
    engine = lab.engine
    _say(f"Model ready: {engine.model_name} on {engine.device} ({engine.dtype})")
    if args.scenario:
        _ingest(lab, load_scenario(args.scenario))
    return 0


def cmd_validate(args) -> int:
    problems = validate_scenario(args.scenario)
    for problem in problems:
        print(problem)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_ingest(args) -> int:
    _ingest(_lab(), load_scenario(args.scenario))
    return 0


def cmd_train(args) -> int:
    _train(_lab(), load_scenario(args.scenario))
    return 0


def cmd_train_job(args) -> int:
    from core.jobs import run_job

    run_job(get_settings(), args.job_id)
    return 0


def cmd_ask(args) -> int:
    scenario = load_scenario(args.scenario)
    lab = _lab()
    if not lab.knowledge_base(scenario).chunk_count():
        _ingest(lab, scenario)
    if args.mode in ("finetuned", "hybrid") and lab.active_adapter(scenario) is None:
        _train(lab, scenario)
    stream = lab.ask(scenario, args.mode, args.question)
    if args.json:
        print(json.dumps(stream.collect().to_dict(), indent=2))
        return 0
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    answer = stream.answer
    _say(
        f"[{args.mode}] {answer.completion_tokens} tokens in {answer.total_s:.2f} s, first token {answer.ttft_s or 0:.2f} s"
    )
    for number, source in enumerate(answer.sources, 1):
        _say(f"  [{number}] {source.name} (score {source.score:.2f})")
    return 0


def cmd_compare(args) -> int:
    from core.compare import Column

    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or len(modes) < 2 or len(set(modes)) != len(modes):
        raise ValueError(f"--modes takes two or more different modes from {','.join(MODES)}")
    scenario = load_scenario(args.scenario)
    lab = _lab()
    if not lab.knowledge_base(scenario).chunk_count():
        _ingest(lab, scenario)
    if any(mode in ("finetuned", "hybrid") for mode in modes) and lab.active_adapter(scenario) is None:
        _train(lab, scenario)
    stream = lab.compare(scenario, [Column(mode, args.adapter) for mode in modes], args.question)
    answers = stream.collect()
    if args.json:
        result = {
            "scenario": scenario.name,
            "question": args.question,
            "decoding": stream.decoding.__dict__,
            "wall_s": stream.wall_s,
            "answers": {answer.mode: answer.to_dict() for answer in answers},
        }
        print(json.dumps(result, indent=2))
        return 0
    for answer in answers:
        print(f"## {answer.mode}\n{answer.text}\n")
        _say(f"[{answer.mode}] {answer.completion_tokens} tokens, first token {answer.ttft_s or 0:.2f} s")
    _say(f"All {len(answers)} answers in one batch: {stream.wall_s:.2f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="RAG vs Fine-Tuning Lab command line")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="convert the bundled model once; index a scenario")
    prepare.add_argument("--scenario", type=Path, help="scenario folder to index")
    prepare.set_defaults(run=cmd_prepare)

    for name, run, text in (
        ("validate", cmd_validate, "check a scenario folder"),
        ("ingest", cmd_ingest, "index a scenario's docs/ (idempotent)"),
        ("train", cmd_train, "train and activate a LoRA adapter on a scenario's train.jsonl"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("scenario", type=Path, metavar="SCENARIO_DIR")
        command.set_defaults(run=run)

    ask = commands.add_parser("ask", help="ask one question in one mode (ingests and trains first if needed)")
    ask.add_argument("--scenario", type=Path, required=True, metavar="SCENARIO_DIR")
    ask.add_argument("--mode", choices=MODES, default="base")
    ask.add_argument("--json", action="store_true", help="print the answer object as JSON")
    ask.add_argument("question")
    ask.set_defaults(run=cmd_ask)

    compare = commands.add_parser("compare", help="ask one question in several modes at once (one batch)")
    compare.add_argument("--scenario", type=Path, required=True, metavar="SCENARIO_DIR")
    compare.add_argument("--modes", default=",".join(MODES), help="comma-separated, two or more (default: all)")
    compare.add_argument("--adapter", help="adapter for finetuned/hybrid (default: the active one)")
    compare.add_argument("--json", action="store_true", help="print every answer object and the batch's wall time")
    compare.add_argument("question")
    compare.set_defaults(run=cmd_compare)

    job = commands.add_parser("train-job", help=argparse.SUPPRESS)
    job.add_argument("job_id", type=int)
    job.set_defaults(run=cmd_train_job)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ScenarioError, MissingModelError, AdapterNotReady, ValueError) as error:
        _say(f"error: {error}")
        return 2
