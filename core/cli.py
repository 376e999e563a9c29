"""Command line: prepare, validate, ingest, retrieve, kb, train, adapters, ask, compare, eval (and run-job, the body
of a background job process)."""

import argparse
import json
import sys
import time
from pathlib import Path

from core.common.model_catalog import BUNDLED_MODELS, DEFAULT_MODEL
from core.common.scenario import ScenarioError, load_scenario
from core.common.settings import get_settings
from core.common.vocabulary import ADAPTER_MODES, MODES
from core.engine.model_store import MissingModelError, ModelChecksumError
from core.scenario_check import validate_scenario
from core.training.adapters import AdapterNotReady


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
    for name, notes in report.notes.items():
        _say(f"  note on {name}: {'; '.join(notes)}")


def _lab(args=None):
    """The Lab, on the model `--model` names (default: LAB_MODEL's)."""
    from core.lab import Lab  # heavy imports (torch, transformers, chromadb) only for commands that need them

    settings = get_settings()
    if getattr(args, "model", None):
        settings = settings.model_copy(update={"model": args.model})
    return Lab(settings)


def _add_model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="NAME",
        help=f"{' | '.join(BUNDLED_MODELS)}, a cached Hugging Face id or a folder (default: LAB_MODEL, else "
        f"{DEFAULT_MODEL})",
    )


def _train(lab, scenario, config=None, dataset: Path | None = None, name: str | None = None) -> None:
    from core.training.estimate import time_left_words
    from core.training.finetune import train_adapter
    from core.training.grounding import source_metadata
    from core.training.train_config import TrainConfig

    def show(p) -> None:
        val = f", val loss {p.val_loss:.3f}" if p.val_loss is not None else ""
        _say(
            f"  step {p.step}/{p.total_steps} (epoch {p.epoch}) loss {p.loss:.3f}{val}, {p.tokens_per_s:.0f} tok/s, "
            f"{time_left_words(p.eta_s)}"
        )

    config = config or TrainConfig()
    if config.context_aware and not lab.knowledge_base(scenario).chunk_count():
        _ingest(lab, scenario)
    source = Path(dataset or scenario.train_path)
    trained_on, grounding = lab.prepare_training(scenario, config, source)
    if grounding:
        _say(f"Context-aware: {grounding.summary()}")
    _say(f"Training a LoRA adapter for {scenario.name} on {source} ...")
    info = train_adapter(
        lab.settings,
        scenario,
        config,
        dataset_path=trained_on,
        on_progress=show,
        on_phase=lambda phase: _say(f"  {phase} ..."),
        name=name,
        source=source_metadata(source, trained_on),
    )
    _say(f"Adapter {info.name} published in {info.metadata['duration_s']} s: {info.path}")
    forgetting = info.metadata.get("forgetting")
    if forgetting:
        _say(
            f"General knowledge: base {forgetting['base_correct']}/{forgetting['questions']}, "
            f"adapter {forgetting['adapter_correct']}/{forgetting['questions']}"
        )


def cmd_prepare(args) -> int:
    """Converts the bundled model once and indexes the scenario: what `make` runs before the app starts."""
    lab = _lab(args)
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
    lab = _lab()
    scenario = load_scenario(args.scenario)
    _ingest(lab, scenario)
    knowledge_base = lab.knowledge_base(scenario)
    current = knowledge_base.settings
    size = args.chunk_size or current.chunk_size
    overlap = current.chunk_overlap if args.overlap is None else args.overlap
    if (size, overlap) != (current.chunk_size, current.chunk_overlap):
        report = knowledge_base.reindex(size, overlap)
        _say(
            f"Re-indexed with chunk size {size}, overlap {overlap}: "
            f"{report.chunks_before} -> {report.chunks_after} chunks in {report.seconds:.1f} s"
        )
    return 0


def cmd_retrieve(args) -> int:
    from core.knowledge.manifest import RetrievalSettings

    lab = _lab()
    scenario = load_scenario(args.scenario)
    knowledge_base = _synced_knowledge_base(lab, scenario)
    saved = knowledge_base.settings.to_dict()
    overrides = {
        "k": args.k,
        "min_score": args.min_score,
        "search_type": "mmr" if args.mmr else None,
        "lexical": False if args.no_lexical else None,
    }
    settings = RetrievalSettings.from_dict({**saved, **{k: v for k, v in overrides.items() if v is not None}})
    hits = knowledge_base.search(args.query, settings)
    if args.json:
        print(json.dumps({"settings": settings.to_dict(), "chunks": [h.to_dict() for h in hits]}, indent=2))
        return 0
    if not hits:
        _say(f"No chunk scored {settings.min_score} or more.")
    for number, hit in enumerate(hits, 1):
        ranks = f"  (dense #{hit.dense_rank or '-'}, lexical #{hit.lexical_rank or '-'})" if hit.fused_rank else ""
        print(f"[{number}] {hit.score:.3f}  {hit.name} #{hit.chunk}{ranks}\n{hit.text}\n")
    return 0


def _synced_knowledge_base(lab, scenario):
    """The scenario's knowledge base with its docs/ imported, as the app does when it opens a scenario."""
    report = lab.ensure_ingested(scenario)
    if report.added or report.failed:
        _say(f"Imported {len(report.added)} new or changed documents from {scenario.docs_dir}")
    return lab.knowledge_base(scenario)


def cmd_kb(args) -> int:
    from core.knowledge.loaders import UnreadableDocument

    lab = _lab()
    scenario = load_scenario(args.scenario)
    knowledge_base = _synced_knowledge_base(lab, scenario)
    if args.action == "list":
        documents = knowledge_base.documents()
        for d in documents:
            updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.updated_at))
            print(f"{d.chunks:6d} chunks  {d.chars:8d} chars  {updated}  {d.origin:8s}  {d.name}")
        _say(f"{len(documents)} documents, {sum(d.chunks for d in documents)} chunks")
    elif args.action == "delete":
        for name in args.names:
            try:
                _say(f"Deleted {name}: {knowledge_base.delete_document(name)} chunks")
            except KeyError as error:
                raise ValueError(error.args[0]) from None
    else:  # add
        failed = 0
        for path in args.names:
            try:
                name, chunks, notes = lab.upload_document(scenario, Path(path).read_bytes(), Path(path).name)
            except (UnreadableDocument, OSError) as error:
                failed += 1
                _say(f"  refused {path}: {error}")
                continue
            _say(f"  added {name}: {chunks} chunks" + (f" ({'; '.join(notes)})" if notes else ""))
        return 1 if failed else 0
    return 0


def cmd_train(args) -> int:
    from core.training.train_config import TrainConfig, config_fields

    config = TrainConfig(**{name: getattr(args, name) for name, *_ in config_fields()})
    if problems := config.problems():
        raise ValueError(" ".join(problems))
    lab, scenario = _lab(args), load_scenario(args.scenario)
    if args.if_missing and (adapter := lab.active_adapter(scenario)):
        _say(f"{scenario.name} already has an adapter for {lab.model_label}: {adapter.name} (nothing to train).")
        return 0
    _train(lab, scenario, config, args.data, args.name)
    return 0


def cmd_adapters(args) -> int:
    from core.training.adapters import ActiveAdapterError

    lab = _lab(args)
    scenario = load_scenario(args.scenario)
    if args.action == "list":
        active = lab.active_adapter(scenario)
        adapters = lab.adapters(scenario)
        if args.json:
            print(json.dumps([{"name": a.name, "active": a == active, **a.metadata} for a in adapters], indent=2))
            return 0
        for a in adapters:
            meta = a.metadata
            loss = meta.get("final_val_loss") or meta.get("final_loss")
            print(
                f"{'*' if a == active else ' '} {a.name:40s} {meta.get('created_at', ''):25s} "
                f"r={meta.get('config', {}).get('rank', '?'):<3} loss {loss}  {meta.get('duration_s', '?')} s"
            )
        _say(f"{len(adapters)} adapters" + (f"; * = active ({active.name})" if active else "; none active"))
    elif args.action == "activate":
        lab.activate_adapter(scenario, args.name)
        _say(f"{args.name} is now the active adapter of {scenario.name}")
    elif args.action == "rename":
        lab.rename_adapter(scenario, args.name, args.new_name)
        _say(f"Renamed {args.name} to {args.new_name}")
    else:  # delete
        try:
            now_active = lab.delete_adapter(scenario, args.name, confirm_active=args.yes)
        except ActiveAdapterError as error:
            raise ValueError(f"{error} (add --yes)") from None
        _say(f"Deleted {args.name}; active now: {now_active.name if now_active else 'none'}")
    return 0


def cmd_eval(args) -> int:
    from core.common.scenario import EVAL_KINDS
    from core.evaluation.eval_store import save_run
    from core.evaluation.judge import configured_judge
    from core.evaluation.runs import EvalConfig, run_evaluation

    modes = tuple(dict.fromkeys(m.strip() for m in ",".join(args.modes).split(",") if m.strip()))
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"--modes takes modes from {','.join(MODES)}")
    kinds = tuple(dict.fromkeys(k.strip() for k in ",".join(args.kinds).split(",") if k.strip()))
    if any(k not in EVAL_KINDS for k in kinds):
        raise ValueError(f"--kinds takes kinds from {','.join(EVAL_KINDS)}")
    scenario = load_scenario(args.scenario)
    lab = _lab(args)
    if not lab.knowledge_base(scenario).chunk_count():
        _ingest(lab, scenario)
    if (
        any(m in ADAPTER_MODES for m in modes)
        and args.adapter is None
        and not lab.remote
        and lab.active_adapter(scenario) is None
    ):
        _train(lab, scenario)
    config = EvalConfig(modes=modes, adapter=args.adapter, kinds=kinds, limit=args.limit, label=args.label or "")
    judge = configured_judge(lab.settings) if args.judge else None
    _say(f"Evaluating {scenario.name}: {', '.join(modes)}" + (f", judged by {judge.name}" if judge else ""))
    result = run_evaluation(
        lab,
        scenario,
        config,
        on_progress=lambda p: _say(f"  [{p.done}/{p.total}] {p.question_id}  ETA {p.eta_s:.0f} s"),
        judge=judge,
    )
    run_id = save_run(lab.settings.data_dir, result, config.label)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    columns = ("accuracy", "freshness", "refusal", "wrongly_declined", "style", "groundedness", "retrieval_hit_rate")
    print(f"{'mode':<10}" + "".join(f"{c.replace('_rate', '').replace('wrongly_', 'wrongly '):>18}" for c in columns))
    for mode, metrics in result["modes"].items():
        cells = ("-" if metrics[c] is None else f"{metrics[c]:.2f}" for c in columns)
        print(f"{mode:<10}" + "".join(f"{cell:>18}" for cell in cells))
    _say(f"Saved as run #{run_id} in {result['wall_s']:.0f} s" + (f"; JSON in {args.out}" if args.out else ""))
    return 0


def cmd_run_job(args) -> int:
    from core.job_runner import run_job

    run_job(get_settings(), args.job_id)
    return 0


def cmd_ask(args) -> int:
    scenario = load_scenario(args.scenario)
    lab = _lab(args)
    if not lab.knowledge_base(scenario).chunk_count():
        _ingest(lab, scenario)
    if args.mode in ADAPTER_MODES and not lab.remote and lab.active_adapter(scenario) is None:
        _train(lab, scenario)
    stream = lab.ask(scenario, args.mode, args.question)
    if args.json:
        print(json.dumps(stream.collect().to_dict(), indent=2))
        return 0
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    answer = stream.answer
    if answer.error:
        _say(f"Error: {answer.error}")
        return 1
    _say(
        f"[{args.mode}] {answer.completion_tokens} tokens in {answer.total_s:.2f} s, first token {answer.ttft_s or 0:.2f} s"
    )
    for number, source in enumerate(answer.sources, 1):
        _say(f"  [{number}] {source.name} (score {source.score:.2f})")
    return 0


def cmd_compare(args) -> int:
    from core.answers.compare import Column

    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or len(modes) < 2 or len(set(modes)) != len(modes):
        raise ValueError(f"--modes takes two or more different modes from {','.join(MODES)}")
    scenario = load_scenario(args.scenario)
    lab = _lab(args)
    if not lab.knowledge_base(scenario).chunk_count():
        _ingest(lab, scenario)
    needs_adapter = any(mode in ADAPTER_MODES for mode in modes)
    if needs_adapter and not lab.remote and lab.active_adapter(scenario) is None:
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
        if answer.error:
            _say(f"[{answer.mode}] Error: {answer.error}")
        _say(f"[{answer.mode}] {answer.completion_tokens} tokens, first token {answer.ttft_s or 0:.2f} s")
    _say(f"All {len(answers)} answers in one batch: {stream.wall_s:.2f} s")
    return 0


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (--learning-rate, --no-context-aware, ...), with its help and default."""
    from core.training.train_config import config_fields

    for name, kind, default, text in config_fields():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            value = int if kind in (int, int | None) else float if kind is float else str
            parser.add_argument(flag, type=value, default=default, help=f"{text} (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="RAG vs Fine-Tuning Lab command line")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="convert the bundled model once; index a scenario")
    prepare.add_argument("--scenario", type=Path, help="scenario folder to index")
    _add_model_flag(prepare)
    prepare.set_defaults(run=cmd_prepare)

    validate = commands.add_parser("validate", help="check a scenario folder")
    validate.add_argument("scenario", type=Path, metavar="SCENARIO_DIR")
    validate.set_defaults(run=cmd_validate)

    train = commands.add_parser("train", help="train and activate a LoRA adapter (default data: train.jsonl)")
    train.add_argument("scenario", type=Path, metavar="SCENARIO_DIR")
    train.add_argument("--data", type=Path, metavar="FILE", help="training set (JSONL) instead of train.jsonl")
    train.add_argument("--name", help="adapter name (default: SCENARIO-DATE-TIME)")
    train.add_argument(
        "--if-missing", action="store_true", help="train only when the scenario has no adapter for this model yet"
    )
    _add_model_flag(train)
    _add_train_flags(train)
    train.set_defaults(run=cmd_train)

    adapters = commands.add_parser("adapters", help="list, activate, rename or delete a scenario's adapters")
    actions = adapters.add_subparsers(dest="action", required=True)
    for action, text in (
        ("list", "adapters with metadata; * marks the active one"),
        ("activate", "use NAME for the fine-tuned and hybrid modes"),
        ("rename", "rename NAME to NEW_NAME"),
        ("delete", "delete NAME (the active one only with --yes)"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument("scenario", type=Path, metavar="SCENARIO_DIR")
        _add_model_flag(command)
        if action != "list":
            command.add_argument("name", metavar="NAME")
        if action == "list":
            command.add_argument("--json", action="store_true")
        if action == "rename":
            command.add_argument("new_name", metavar="NEW_NAME")
        if action == "delete":
            command.add_argument("--yes", action="store_true", help="confirm deleting the active adapter")
        command.set_defaults(run=cmd_adapters)

    ingest = commands.add_parser("ingest", help="index a scenario's docs/ (new and changed files); re-chunk")
    ingest.add_argument("scenario", type=Path, metavar="SCENARIO_DIR")
    ingest.add_argument("--chunk-size", type=int, help="characters per chunk (re-indexes every document)")
    ingest.add_argument("--overlap", type=int, help="characters shared by neighbouring chunks")
    ingest.set_defaults(run=cmd_ingest)

    retrieve = commands.add_parser("retrieve", help="print the chunks a query retrieves, with scores")
    retrieve.add_argument("--scenario", type=Path, required=True, metavar="SCENARIO_DIR")
    retrieve.add_argument("--k", type=int, help="chunks to return (default: the knowledge base's setting)")
    retrieve.add_argument("--min-score", type=float, help="drop chunks scoring below this (cosine, -1..1)")
    retrieve.add_argument("--mmr", action="store_true", help="maximal marginal relevance instead of similarity")
    retrieve.add_argument("--no-lexical", action="store_true", help="embeddings only, without BM25 fused in")
    retrieve.add_argument("--json", action="store_true")
    retrieve.add_argument("query")
    retrieve.set_defaults(run=cmd_retrieve)

    kb = commands.add_parser("kb", help="list, add or delete knowledge-base documents")
    actions = kb.add_subparsers(dest="action", required=True)
    for action, names, text in (
        ("list", None, "documents with chunk counts and dates"),
        ("add", "FILE", "upload files (checked and parsed as in the app)"),
        ("delete", "NAME", "remove documents and their chunks"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument("--scenario", type=Path, required=True, metavar="SCENARIO_DIR")
        if names:
            command.add_argument("names", nargs="+", metavar=names)
        command.set_defaults(run=cmd_kb)

    ask = commands.add_parser("ask", help="ask one question in one mode (ingests and trains first if needed)")
    ask.add_argument("--scenario", type=Path, required=True, metavar="SCENARIO_DIR")
    ask.add_argument("--mode", choices=MODES, default="base")
    ask.add_argument("--json", action="store_true", help="print the answer object as JSON")
    _add_model_flag(ask)
    ask.add_argument("question")
    ask.set_defaults(run=cmd_ask)

    compare = commands.add_parser("compare", help="ask one question in several modes at once (one batch)")
    compare.add_argument("--scenario", type=Path, required=True, metavar="SCENARIO_DIR")
    compare.add_argument("--modes", default=",".join(MODES), help="comma-separated, two or more (default: all)")
    compare.add_argument("--adapter", help="adapter for finetuned/hybrid (default: the active one)")
    compare.add_argument("--json", action="store_true", help="print every answer object and the batch's wall time")
    _add_model_flag(compare)
    compare.add_argument("question")
    compare.set_defaults(run=cmd_compare)

    evaluate = commands.add_parser("eval", help="score the modes on the scenario's eval questions; saves the run")
    evaluate.add_argument("scenario", type=Path, metavar="SCENARIO_DIR")
    evaluate.add_argument(
        "--modes", nargs="+", default=list(MODES), help="modes to evaluate, space- or comma-separated (default: all)"
    )
    evaluate.add_argument("--adapter", help="adapter for finetuned/hybrid (default: the active one)")
    evaluate.add_argument(
        "--kinds", nargs="+", default=["answerable", "fresh", "unanswerable", "style"], help="question kinds to ask"
    )
    evaluate.add_argument("--limit", type=int, help="only the first N questions")
    evaluate.add_argument("--label", help="name of the saved run")
    evaluate.add_argument(
        "--judge", action=argparse.BooleanOptionalAction, default=True, help="use the LLM judge if configured"
    )
    evaluate.add_argument("--out", type=Path, metavar="FILE.json", help="also write the run as JSON here")
    _add_model_flag(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    job = commands.add_parser("run-job", help=argparse.SUPPRESS)
    job.add_argument("job_id", type=int)
    job.set_defaults(run=cmd_run_job)
    return parser


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors whose message says it all (no traceback). core.knowledge.knowledge_base is slow to import, so it
    is imported only once something has failed."""
    from core.knowledge.knowledge_base import KnowledgeBaseBusy

    return (ScenarioError, MissingModelError, ModelChecksumError, AdapterNotReady, ValueError, KnowledgeBaseBusy)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as error:
        if not isinstance(error, _user_errors()):
            raise
        _say(f"error: {error}")
        return 2
