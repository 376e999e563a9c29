"""The Lab: one object per process that owns the model, the embeddings, the knowledge bases and the jobs.

Pages and the command line ask it for answers and status; it loads each heavy thing once, on first
use, and is safe to share between threads (Streamlit sessions).
"""

import functools
import gc
import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from core.answers.compare import Column, ComparisonStream
from core.answers.figure_check import states_unsupported_figure, withhold_unsupported_figures
from core.answers.modes import AnswerRules, AnswerStream, build_chain, build_prompt_chain
from core.answers.release import Hold, any_hold
from core.answers.topic_check import topic_check, topic_hold
from core.backends import backend_for
from core.common.model_catalog import BUNDLED_MODELS, bundled_model, model_label
from core.common.scenario import Scenario, ScenarioError, create_scenario, list_scenarios
from core.common.settings import Settings
from core.common.vocabulary import ADAPTER_MODES, MODES, Answer, Decoding
from core.engine.cpu_budget import CpuBudget
from core.engine.embeddings import BundledEmbeddings
from core.engine.engine import Engine
from core.engine.model_store import load_model
from core.evaluation.runs import EvalConfig
from core.jobs import Job, latest_job, submit_evaluation, submit_training
from core.knowledge.knowledge_base import KnowledgeBase, chroma_client
from core.knowledge.manifest import RetrievalSettings
from core.knowledge.uploads import parse_upload
from core.text.derailment import derailment
from core.text.question_limit import check_question
from core.training.adapters import (
    AdapterInfo,
    AdapterNotReady,
    active_adapter,
    delete_adapter,
    list_adapters,
    rename_adapter,
    set_active,
)
from core.training.grounding import GroundingReport, prepare_training_set
from core.training.train_config import TrainConfig


class Lab:
    def __init__(self, settings: Settings, budget: CpuBudget | None = None):
        self.settings = settings
        # the model's thread count (a job process passes one that pauses while the app answers)
        self.budget = budget or CpuBudget(settings.data_dir, "app", settings.threads)
        self._engine: Engine | None = None
        self.embeddings = BundledEmbeddings(settings)  # loads on the first text to embed
        self._knowledge_bases: dict[str, KnowledgeBase] = {}
        self._lock = threading.RLock()
        self.backend = backend_for(settings, lambda: self.engine)

    # --- shared heavy things, loaded once -----------------------------------------------------
    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = Engine(load_model(self.settings), self.budget, self.settings.quantization)
            return self._engine

    @property
    def model_label(self) -> str:
        """The local model's name, as answers and adapters record it; known without loading it."""
        return model_label(self.settings.model)

    def model_choices(self) -> dict[str, str]:
        """What the model switch offers: LAB_MODEL value -> name (the bundled models, and the configured
        model when it is another)."""
        choices = {key: model.name for key, model in BUNDLED_MODELS.items()}
        if bundled_model(self.settings.model) is None:
            choices[self.settings.model] = self.settings.model
        return choices

    def switch_model(self, choice: str) -> None:
        """Answers with `choice` (a LAB_MODEL value) from now on, for every session of this process. The
        current model is released first (answers running now finish on it), so one model is in memory;
        the new one loads on the next answer. Jobs submitted afterwards train and evaluate `choice`."""
        if choice not in self.model_choices():
            raise ValueError(f"Unknown model {choice!r}: choose one of {', '.join(self.model_choices())}")
        with self._lock:
            if model_label(choice) == self.model_label:
                return
            old, self._engine = self._engine, None
            self.settings = self.settings.model_copy(update={"model": choice})
        if old is not None:
            old.close()
            del old
            gc.collect()

    def warm_up(self) -> None:
        """Loads the model (unless a server answers) and the embeddings now rather than inside the first answer."""
        self.backend.warm_up()
        self.embeddings.load()

    @property
    def remote(self) -> bool:
        """True when answers come from an OpenAI-compatible server instead of the embedded model."""
        return self.backend.remote

    def same_answer_note(self) -> str | None:
        """None when each compare column is guaranteed its mode page's answer (the local engine on CPU,
        core.engine.row_products); otherwise what may differ, for the compare page to say."""
        return self.backend.same_answer_note()

    def model_name(self) -> str:
        return self.backend.model_name()

    def knowledge_base(self, scenario: Scenario) -> KnowledgeBase:
        with self._lock:
            if scenario.name not in self._knowledge_bases:
                s = self.settings
                defaults = RetrievalSettings(
                    k=s.retrieval_k,
                    min_score=s.retrieval_min_score,
                    lexical=s.retrieval_lexical,
                    lexical_weight=s.retrieval_lexical_weight,
                    chunk_size=s.chunk_size,
                    chunk_overlap=s.chunk_overlap,
                )
                client = chroma_client(Path(s.data_dir) / "chroma", s.chroma_host, s.chroma_port)
                self._knowledge_bases[scenario.name] = KnowledgeBase(
                    s.data_dir, scenario.name, self.embeddings, defaults, client
                )
            return self._knowledge_bases[scenario.name]

    def upload_document(
        self, scenario: Scenario, data: bytes, raw_name: str, progress=None
    ) -> tuple[str, int, list[str]]:
        """Parses an uploaded file (bounded in size, time and memory) and adds it to the knowledge base:
        (document name, chunks written, parsing notes). Raises UnreadableDocument; nothing changes then."""
        s = self.settings
        name, parsed = parse_upload(data, raw_name, s.max_upload_mb * 10**6, s.parse_timeout_s, s.parse_memory_mb)
        return name, self.knowledge_base(scenario).add_text(name, parsed, progress=progress), parsed.notes

    # --- scenarios ----------------------------------------------------------------------------
    @property
    def user_scenarios_dir(self) -> Path:
        """Where scenarios created from the app live (the scenarios folder may be read-only or in git)."""
        return Path(self.settings.data_dir) / "scenarios"

    def scenarios(self) -> list[Scenario]:
        return list_scenarios(self.settings.scenarios_dir, self.user_scenarios_dir)

    def create_scenario(self, title: str, description: str) -> Scenario:
        return create_scenario(self.user_scenarios_dir, title, description, {s.name for s in self.scenarios()})

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios():
            if scenario.name == name:
                return scenario
        raise ScenarioError(f"No scenario named {name!r} in {self.settings.scenarios_dir}")

    def ensure_ingested(self, scenario: Scenario, progress=None):
        """Imports the scenario's docs folder: new and changed files only."""
        return self.knowledge_base(scenario).sync_folder(scenario.docs_dir, progress)

    # --- adapters -----------------------------------------------------------------------------
    def active_adapter(self, scenario: Scenario) -> AdapterInfo | None:
        return active_adapter(self.settings.data_dir, scenario.name, self.model_label)

    def prepare_training(
        self, scenario: Scenario, config: TrainConfig, dataset_path: Path | None = None
    ) -> tuple[Path, GroundingReport | None]:
        """The file a job trains on: the chosen set itself, or (context-aware) its version with retrieved
        sources, rendered here because this process owns the knowledge base."""
        dataset_path = Path(dataset_path or scenario.train_path)
        if not config.context_aware:
            return dataset_path, None
        knowledge_base = self.knowledge_base(scenario)
        retrieval = knowledge_base.settings

        def search(question: str, n: int) -> list:
            return knowledge_base.search(question, replace(retrieval, k=n))

        out_dir = Path(self.settings.data_dir) / "datasets"
        path, report = prepare_training_set(
            dataset_path, scenario.system_prompt, search, retrieval.k, config.context_share, config.seed, out_dir
        )
        path.with_suffix(".json").write_text(json.dumps({"source": str(dataset_path), **report.to_dict()}))
        return path, report

    def submit_training(
        self, scenario: Scenario, config: TrainConfig | None = None, dataset_path: Path | None = None
    ) -> int:
        """Queues a training job (a separate process) and returns its id. Raises ValueError for a bad set."""
        config = config or TrainConfig()
        source = Path(dataset_path or scenario.train_path)
        trained_on, _ = self.prepare_training(scenario, config, source)
        return submit_training(self.settings, scenario.path, config, dataset=trained_on, source_dataset=source)

    def submit_evaluation(self, scenario: Scenario, config: EvalConfig) -> int:
        """Queues an evaluation run (a separate process) and returns its id."""
        return submit_evaluation(self.settings, scenario.path, config)

    def ensure_adapter_training(self, scenario: Scenario) -> Job | None:
        """Starts training in the background if the scenario has no adapter and has never had a job.

        A failed or cancelled job is not retried on its own: the page offers a button instead."""
        if self.active_adapter(scenario) or not self.settings.auto_train:
            return None
        job = latest_job(self.settings, scenario.name, model=self.model_label)
        if job:
            return job
        if scenario.train_path.exists():
            self.submit_training(scenario)
        return latest_job(self.settings, scenario.name, model=self.model_label)

    def adapters(self, scenario: Scenario) -> list[AdapterInfo]:
        """The scenario's adapters trained on the model loaded now: the only ones it can use."""
        return list_adapters(self.settings.data_dir, scenario.name, self.model_label)

    def other_models_adapters(self, scenario: Scenario) -> list[AdapterInfo]:
        """Adapters of this scenario trained on another base model: listed, never loaded into this one."""
        return [a for a in list_adapters(self.settings.data_dir, scenario.name) if a.base_model != self.model_label]

    def activate_adapter(self, scenario: Scenario, name: str) -> None:
        self._own_adapter(scenario, name)
        set_active(self.settings.data_dir, scenario.name, name)

    def _own_adapter(self, scenario: Scenario, name: str) -> AdapterInfo:
        """The adapter `name` of the model loaded now; AdapterNotReady says why another one is refused."""
        found = {a.name: a for a in list_adapters(self.settings.data_dir, scenario.name)}
        if name not in found:
            raise AdapterNotReady(f"Scenario {scenario.name!r} has no adapter named {name!r}.")
        if found[name].base_model != self.model_label:
            raise AdapterNotReady(
                f"The adapter {name!r} was trained on {found[name].base_model}, not on {self.model_label}: "
                "an adapter only fits the model it was trained on. Switch models, or train one for this model."
            )
        return found[name]

    def rename_adapter(self, scenario: Scenario, old: str, new: str) -> AdapterInfo:
        renamed = rename_adapter(self.settings.data_dir, scenario.name, old, new)
        self._forget(AdapterInfo(old, renamed.path, renamed.metadata))
        return renamed

    def delete_adapter(self, scenario: Scenario, name: str, confirm_active: bool = False) -> AdapterInfo | None:
        """Deletes an adapter; returns the adapter active afterwards (see core.training.adapters.delete_adapter)."""
        doomed = next((a for a in self.adapters(scenario) if a.name == name), None)
        now_active = delete_adapter(self.settings.data_dir, scenario.name, name, confirm_active)
        if doomed:
            self._forget(doomed)
        return now_active

    def _forget(self, adapter: AdapterInfo) -> None:
        if self._engine is not None:
            self._engine.forget_adapter(adapter.engine_name)

    def load_adapter(self, scenario: Scenario, name: str | None = None) -> AdapterInfo:
        """Loads the named adapter (default: the active one) into the engine, once. On a server, the
        fine-tuned model is the configured one, or for a named Lab adapter SCENARIO--NAME: the name
        deploy/vllm/serve.sh serves it under."""
        return self.backend.load_adapter(scenario.name, name, lambda: self._registered_adapter(scenario, name))

    def _registered_adapter(self, scenario: Scenario, name: str | None) -> AdapterInfo:
        """The registry's adapter `name` of the model loaded now, or its active one."""
        if name is not None:
            return self._own_adapter(scenario, name)
        adapter = self.active_adapter(scenario)
        if adapter is None:
            raise AdapterNotReady(f"Scenario {scenario.name!r} has no fine-tuned adapter for {self.model_label} yet.")
        return adapter

    # --- answers ------------------------------------------------------------------------------
    def decoding(self) -> Decoding:
        s = self.settings
        return Decoding(s.max_new_tokens, s.temperature, s.top_p, s.repetition_penalty, s.seed)

    def _retriever(self, scenario: Scenario):
        """Searches the knowledge base with its saved settings, read at each question. Opened on the
        first search, so a base or fine-tuned answer never waits for Chroma."""
        return lambda question: self.knowledge_base(scenario).search(question)

    def ask(
        self,
        scenario: Scenario,
        mode: str,
        question: str,
        history: list[dict] | None = None,
        adapter: str | None = None,
        stop_derailed: bool = False,
    ) -> AnswerStream:
        """An answer to stream. finetuned/hybrid use `adapter` (default: the active one) and raise
        AdapterNotReady when there is none; a question over the length limit raises QuestionTooLong.
        `stop_derailed`: end it early when it derails (core.text.derailment), as the pages do;
        evaluations and the command line keep whole answers."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        check_question(question)
        info = self.load_adapter(scenario, adapter) if mode in ADAPTER_MODES else None
        chain = build_chain(mode, self.backend.chat_model(info, self.decoding()), self._retriever(scenario))
        inputs = {"question": question, "history": list(history or []), "system_prompt": scenario.system_prompt}
        answer = Answer(mode=mode, question=question, adapter=info and info.name, **self._origin(info))
        rules = self._rules(scenario, stop_derailed)
        return AnswerStream(chain, inputs, answer, rules, self.backend.error_words())

    def compare(
        self,
        scenario: Scenario,
        columns: list[Column],
        question: str,
        histories: list[list[dict]] | None = None,
        decoding: Decoding | None = None,
        stop_derailed: bool = False,
    ) -> ComparisonStream:
        """Every column's answer from one batched generation; `histories` holds each column's own turns.
        `stop_derailed`: end a column early when it derails, by the same rule for every column as on
        the mode pages (core.text.derailment). A question over the length limit raises QuestionTooLong."""
        if len(columns) < 1:
            raise ValueError("choose at least one column to compare")
        check_question(question)
        for column in columns:
            if column.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}")
        adapters = [self.load_adapter(scenario, c.adapter) if c.mode in ADAPTER_MODES else None for c in columns]
        retrieve = _retrieve_once(self._retriever(scenario))
        prompt_chains = [build_prompt_chain(c.mode, retrieve) for c in columns]
        inputs = [
            {"question": question, "history": list(h), "system_prompt": scenario.system_prompt}
            for h in (histories or [[] for _ in columns])
        ]
        answers = [
            Answer(mode=c.mode, question=question, adapter=a and a.name, **self._origin(a))
            for c, a in zip(columns, adapters, strict=True)
        ]
        return self.backend.compare(
            columns,
            adapters,
            prompt_chains,
            retrieve,
            inputs,
            answers,
            decoding or self.decoding(),
            self._rules(scenario, stop_derailed),
        )

    def _origin(self, adapter: AdapterInfo | None) -> dict:
        """Who answers: the model (so an answer stopped before its stats came still names it), and for a
        server its host."""
        return {"model": self.backend.model_name(), **self.backend.origin(adapter)}

    def _rules(self, scenario: Scenario, stop_derailed: bool) -> AnswerRules:
        """What every finished answer goes through: its price (servers), then the figure check and the
        topic check (each unless off); the hold that keeps what those checks would withhold off the
        screen while an answer streams (core.answers.release); and, when asked, the derailment rule.
        The knowledge base's words are read once per answer or comparison."""
        s = self.settings
        vocabulary = functools.cache(lambda: self.knowledge_base(scenario).vocabulary())
        steps = self.backend.finish_steps()
        holds: list[Hold] = []
        if s.figure_check:
            steps, holds = steps + [withhold_unsupported_figures], holds + [states_unsupported_figure]
        if s.topic_check:
            steps, holds = steps + [topic_check(vocabulary)], holds + [topic_hold(vocabulary)]

        def finish(answer: Answer) -> None:
            for step in steps:
                step(answer)

        return AnswerRules(finish if steps else None, any_hold(holds), derailment if stop_derailed else None)

    def status(self, scenario: Scenario) -> "LabStatus":
        """What the home page and sidebar show."""
        adapter = self.active_adapter(scenario)
        documents = self.knowledge_base(scenario).documents()
        common = {
            "documents": len(documents),
            "chunks": sum(d.chunks for d in documents),
            "adapter": adapter.name if adapter else None,
            "adapter_metadata": adapter.metadata if adapter else None,
            "job": latest_job(self.settings, scenario.name, model=self.model_label),
            "data_dir": str(Path(self.settings.data_dir).resolve()),
        }
        return LabStatus(**self.backend.describe_model(), **common)


@dataclass(frozen=True)
class LabStatus:
    """The state the home page and the sidebar show for one scenario."""

    model: str
    device: str  # cpu or cuda; for a server, its host
    documents: int
    chunks: int
    adapter: str | None  # the active adapter of this model, if any
    adapter_metadata: dict | None
    job: Job | None  # the latest training job of this model
    data_dir: str
    dtype: str = ""  # the local model's dtype (float32, bfloat16), and "· int8 weights" when quantized
    context_window: int | None = None
    server: str = ""  # the OpenAI-compatible server's host, when one answers instead of the local model

    @property
    def remote(self) -> bool:
        return bool(self.server)


def _retrieve_once(retrieve):
    """Retrieval memoised per question: RAG and hybrid columns share one search."""
    found: dict[str, list] = {}
    lock = threading.Lock()  # server columns retrieve from their own threads

    def cached(question: str) -> list:
        with lock:
            if question not in found:
                found[question] = retrieve(question)
            return found[question]

    return cached
