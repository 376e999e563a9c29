"""Where answers come from: the embedded model (LocalBackend) or an OpenAI-compatible server
(ServerBackend). The Lab holds one and asks it for chat models, adapters, comparisons and status,
instead of branching on the backend in every method. Both give every mode the same decoding setup."""

from collections.abc import Callable
from pathlib import Path

from core.answers.chat_model import LocalChatModel
from core.answers.compare import ComparisonStream, ConcurrentComparisonStream
from core.answers.modes import AnswerStream, build_chain
from core.answers.remote_model import (
    answer_cost,
    check_openai_settings,
    describe_error,
    is_server_error,
    remote_chat_model,
    server_label,
)
from core.common.settings import Settings
from core.common.vocabulary import Answer, Decoding
from core.engine.engine import Engine
from core.training.adapters import AdapterInfo, AdapterNotReady


class LocalBackend:
    """The embedded model: every answer is a row of the shared Engine, adapters are loaded into it."""

    remote = False

    def __init__(self, engine: Callable[[], Engine]):
        self._engine = engine  # the Lab's engine, loaded on first use

    def check(self) -> None:
        """Nothing to configure: the bundled model is always there (a missing one raises when loaded)."""

    def warm_up(self) -> None:
        self._engine()

    def model_name(self) -> str:
        return self._engine().model_name

    def describe_model(self) -> dict:
        """The fields of the Lab's status that say which model answers, and on what."""
        engine = self._engine()
        return {
            "model": engine.model_name,
            "device": engine.device,
            "dtype": str(engine.dtype).removeprefix("torch.")
            + (" · int8 weights" if engine.quantization == "int8" else ""),
            "context_window": engine.context_window,
        }

    def same_answer_note(self) -> str | None:
        if self._engine().device != "cpu":
            return (
                "On a GPU, batched products round differently from single ones: a column can differ from "
                "its mode page's answer where two next words were nearly tied."
            )
        return None  # on CPU each column is guaranteed its mode page's answer (core.engine.row_products)

    def load_adapter(self, scenario_name: str, name: str | None, registered: Callable[[], AdapterInfo]) -> AdapterInfo:
        """Loads the registry's adapter (`registered()`: the one named, or the active one) into the engine, once."""
        adapter = registered()
        self._engine().ensure_adapter(adapter.engine_name, adapter.path)
        return adapter

    def chat_model(self, adapter: AdapterInfo | None, decoding: Decoding) -> LocalChatModel:
        return LocalChatModel(engine=self._engine(), adapter=adapter and adapter.engine_name, decoding=decoding)

    def origin(self, adapter: AdapterInfo | None) -> dict:
        return {}

    def error_words(self) -> Callable[[Exception], str | None] | None:
        return None  # a local failure is a bug: it raises

    def finish_steps(self) -> list[Callable[[Answer], None]]:
        return []

    def compare(self, columns, adapters, prompt_chains, retrieve, inputs, answers, decoding, rules):
        """Every column as a row of one batched generation."""
        del columns, retrieve  # the prompt chains already retrieve
        engine_adapters = [a and a.engine_name for a in adapters]
        return ComparisonStream(self._engine(), prompt_chains, inputs, answers, engine_adapters, decoding, rules)


class ServerBackend:
    """An OpenAI-compatible server (OpenAI, vLLM): base and RAG ask LAB_OPENAI_MODEL; fine-tuned and hybrid
    ask LAB_OPENAI_FINETUNED_MODEL, or SCENARIO--NAME for a named Lab adapter that vLLM serves."""

    remote = True

    def __init__(self, settings: Settings):
        self.settings = settings

    def check(self) -> None:
        check_openai_settings(self.settings)

    def warm_up(self) -> None:
        """The server is already running: nothing to load here."""

    def model_name(self) -> str:
        return self.settings.openai_model or ""

    def describe_model(self) -> dict:
        server = server_label(self.settings)
        return {"model": self.model_name(), "device": server, "server": server}

    def same_answer_note(self) -> str | None:
        return (
            "The server may batch these requests with others; a column can then differ from its mode "
            "page's answer where two next words were nearly tied."
        )

    def load_adapter(self, scenario_name: str, name: str | None, registered: Callable[[], AdapterInfo]) -> AdapterInfo:
        del registered  # the server's adapters are its own; deploy/vllm/serve.sh names them SCENARIO--NAME
        model = f"{scenario_name}--{name}" if name else self.settings.openai_finetuned_model
        if not model:
            raise AdapterNotReady(
                "The OpenAI-compatible backend has no fine-tuned model: set LAB_OPENAI_FINETUNED_MODEL "
                "(an OpenAI ft: id, or the name of a LoRA adapter that vLLM serves)."
            )
        return AdapterInfo(model, Path(), {"server": server_label(self.settings)})

    def chat_model(self, adapter: AdapterInfo | None, decoding: Decoding):
        return remote_chat_model(self.settings, adapter.name if adapter else self.model_name(), decoding)

    def origin(self, adapter: AdapterInfo | None) -> dict:
        """The server's host and the model asked (the reply may rename it)."""
        model = adapter.name if adapter else self.model_name()
        return {"backend": "openai", "server": server_label(self.settings), "model": model}

    def error_words(self) -> Callable[[Exception], str | None]:
        """Server failures become the answer's error: one column fails, not the page."""
        return lambda error: describe_error(error, self.settings) if is_server_error(error) else None

    def finish_steps(self) -> list[Callable[[Answer], None]]:
        return [self._price]

    def _price(self, answer: Answer) -> None:
        model = answer.adapter or self.model_name()
        answer.cost_usd = answer_cost(self.settings, model, answer.prompt_tokens, answer.completion_tokens)

    def compare(self, columns, adapters, prompt_chains, retrieve, inputs, answers, decoding, rules):
        """One request per column, all at once; a failing column does not stop the others."""
        del prompt_chains  # each request's chain builds its own prompt
        chains = [
            build_chain(c.mode, self.chat_model(a, decoding), retrieve) for c, a in zip(columns, adapters, strict=True)
        ]
        streams = [
            AnswerStream(chain, i, answer, rules, self.error_words())
            for chain, i, answer in zip(chains, inputs, answers, strict=True)
        ]
        return ConcurrentComparisonStream(streams, decoding)


def backend_for(settings: Settings, engine: Callable[[], Engine]) -> LocalBackend | ServerBackend:
    return ServerBackend(settings) if settings.backend == "openai" else LocalBackend(engine)
