"""The four modes as LCEL runnables over one chat model, and the Answer every mode returns.

base and finetuned share the plain prompt; rag and hybrid share the grounded prompt. finetuned and
hybrid bind an adapter (the scenario's active one unless another is chosen); base and rag bind none.
Nothing else differs. The prompt half of each chain (`build_prompt_chain`) is also what the compare
view uses before it generates every column in one batch.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from operator import itemgetter

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough

from core.chat_model import LocalChatModel
from core.prompts import GROUNDED_PROMPT, NO_SOURCE_ANSWER, NO_SOURCE_NOTE, PLAIN_PROMPT, format_sources

MODES = ("base", "rag", "finetuned", "hybrid")
RETRIEVAL_MODES = ("rag", "hybrid")
ADAPTER_MODES = ("finetuned", "hybrid")
MODE_LABELS = {"base": "Base", "rag": "RAG", "finetuned": "Fine-tuned", "hybrid": "Hybrid"}


@dataclass
class Answer:
    mode: str
    question: str
    text: str = ""
    sources: list = field(default_factory=list)  # knowledge_base.Source
    adapter: str | None = None  # the adapter's registry name; None for base and rag
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_s: float = 0.0
    ttft_s: float | None = None  # from the question to the first token, retrieval included
    total_s: float = 0.0
    tokens_per_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    withheld_draft: str = ""  # what the model wrote when a check replaced it (core.figure_check)
    backend: str = "local"  # local, or openai (an OpenAI-compatible server)
    server: str = ""  # the server's host for the openai backend
    cost_usd: float | None = None  # where the model's price is known
    error: str = ""  # why no (complete) answer came, in words; the other columns are unaffected

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sources"] = [s.to_dict() for s in self.sources]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Answer":
        """An answer saved with to_dict; fields it does not know (from another version) are dropped."""
        from core.knowledge_base import Source  # chromadb is heavy: only where saved answers are read

        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**{**known, "sources": [Source(**s) for s in known.get("sources", [])]})

    def record(self, *, model: str, stats: dict, started: float) -> None:
        """Fills in the generation figures. `stats` holds prompt_tokens, completion_tokens, tokens_per_s,
        notes and ttft_s (from the start of generation); times are counted from `started`."""
        self.model = model or self.model  # some servers name no model in their stream
        self.prompt_tokens = stats["prompt_tokens"]
        self.completion_tokens = stats["completion_tokens"]
        self.tokens_per_s = round(stats["tokens_per_s"] or 0.0, 2)
        self.notes = list(stats["notes"] or [])
        self.total_s = round(time.perf_counter() - started, 3)
        if stats["ttft_s"] is not None:
            self.ttft_s = round(self.retrieval_s + stats["ttft_s"], 3)


def fill_in_timing(answer: Answer, started: float, first_token_at: float | None, model_asked: bool = True) -> None:
    """Times a server does not report (the local engine does), measured here as the user waited.
    An answer the model was not asked for (no sources) has no time to first token."""
    now = time.perf_counter()
    answer.total_s = answer.total_s or round(now - started, 3)
    if not model_asked:
        return
    if answer.ttft_s is None and first_token_at is not None:
        answer.ttft_s = round(first_token_at - started, 3)
    if not answer.tokens_per_s and answer.completion_tokens and first_token_at is not None and now > first_token_at:
        answer.tokens_per_s = round(answer.completion_tokens / (now - first_token_at), 2)


def build_prompt_chain(mode: str, retrieve) -> Runnable:
    """Input {"question", "history", "system_prompt"}; adds "sources" (retrieved chunks, or []) and
    "messages" (the prompt as a ChatPromptValue)."""
    if mode in RETRIEVAL_MODES:
        return RunnablePassthrough.assign(sources=RunnableLambda(lambda x: retrieve(x["question"]))) | (
            RunnablePassthrough.assign(
                messages=RunnableLambda(lambda x: {**x, "sources": format_sources(x["sources"])}) | GROUNDED_PROMPT
            )
        )
    return RunnablePassthrough.assign(sources=RunnableLambda(lambda x: [])) | RunnablePassthrough.assign(
        messages=PLAIN_PROMPT
    )


def build_chain(mode: str, llm: LocalChatModel, retrieve) -> Runnable:
    """The prompt chain, then the model: streams {"sources": [...]}, {"messages": ...}, then {"answer": chunk}s.
    A retrieval mode that found no source good enough answers NO_SOURCE_ANSWER without the model."""
    answer = RunnableBranch(
        (lambda x: not needs_model(mode, x["sources"]), RunnableLambda(lambda x: no_source_answer())),
        itemgetter("messages") | llm,
    )
    return build_prompt_chain(mode, retrieve) | RunnablePassthrough.assign(answer=answer)


def needs_model(mode: str, sources: list) -> bool:
    return mode not in RETRIEVAL_MODES or bool(sources)


def no_source_answer() -> AIMessageChunk:
    return AIMessageChunk(
        content=NO_SOURCE_ANSWER,
        usage_metadata={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
        response_metadata={
            "model_name": "",
            "model_asked": False,
            "ttft_s": None,
            "tokens_per_s": 0.0,
            "notes": [NO_SOURCE_NOTE],
        },
    )


class AnswerStream:
    """Iterate for the answer's text pieces; afterwards `.answer` holds the complete Answer."""

    def __init__(
        self,
        chain: Runnable,
        inputs: dict,
        answer: Answer,
        finish: Callable[[Answer], None] | None = None,
        describe_error: Callable[[Exception], str | None] | None = None,
    ):
        self.chain = chain
        self.inputs = inputs
        self.answer = answer
        self.finish = finish  # run on the complete answer (cost, figure check)
        self.describe_error = describe_error  # a server's failure -> words for answer.error; None: raise

    def __iter__(self) -> Iterator[str]:
        started = time.perf_counter()
        first_token_at = None
        model_asked = True
        try:
            for part in self.chain.stream(self.inputs):
                if "sources" in part:
                    self.answer.sources = part["sources"]
                    self.answer.retrieval_s = round(time.perf_counter() - started, 3)
                chunk = part.get("answer")
                if chunk is None:
                    continue
                if chunk.content:
                    first_token_at = first_token_at or time.perf_counter()
                    self.answer.text += chunk.content
                    yield chunk.content
                if chunk.usage_metadata:
                    meta = chunk.response_metadata
                    model_asked = meta.get("model_asked", True)
                    stats = {
                        "prompt_tokens": chunk.usage_metadata["input_tokens"],
                        "completion_tokens": chunk.usage_metadata["output_tokens"],
                        **{key: meta.get(key) for key in ("ttft_s", "tokens_per_s", "notes")},
                    }
                    self.answer.record(model=meta.get("model_name", ""), stats=stats, started=started)
        except Exception as error:
            message = self.describe_error(error) if self.describe_error else None
            if message is None:
                raise
            self.answer.error = message
        fill_in_timing(self.answer, started, first_token_at, model_asked)
        if self.finish and not self.answer.error:
            self.finish(self.answer)

    def collect(self) -> Answer:
        for _ in self:
            pass
        return self.answer
