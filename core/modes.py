"""The four modes as LCEL runnables over one chat model, and the Answer every mode returns.

base and finetuned share the plain prompt; rag and hybrid share the grounded prompt. finetuned and
hybrid bind the scenario's active adapter; base and rag bind none. Nothing else differs.
"""

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from core.chat_model import LocalChatModel
from core.prompts import GROUNDED_PROMPT, PLAIN_PROMPT, format_sources

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
    adapter: str | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_s: float = 0.0
    ttft_s: float | None = None
    total_s: float = 0.0
    tokens_per_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sources"] = [s.to_dict() for s in self.sources]
        return data


def build_chain(mode: str, llm: LocalChatModel, retrieve) -> Runnable:
    """Input {"question", "history", "system_prompt"}; streams {"sources": [...]} then {"answer": chunk}s."""
    if mode in RETRIEVAL_MODES:
        prompt = RunnablePassthrough.assign(
            sources=RunnableLambda(lambda x: retrieve(x["question"]))
        ) | RunnablePassthrough.assign(
            answer=RunnableLambda(lambda x: {**x, "sources": format_sources(x["sources"])}) | GROUNDED_PROMPT | llm
        )
        return prompt
    return RunnablePassthrough.assign(answer=PLAIN_PROMPT | llm)


class AnswerStream:
    """Iterate for the answer's text pieces; afterwards `.answer` holds the complete Answer."""

    def __init__(self, chain: Runnable, inputs: dict, answer: Answer):
        self.chain = chain
        self.inputs = inputs
        self.answer = answer

    def __iter__(self) -> Iterator[str]:
        started = time.perf_counter()
        for part in self.chain.stream(self.inputs):
            if "sources" in part:
                self.answer.sources = part["sources"]
                self.answer.retrieval_s = time.perf_counter() - started
            chunk = part.get("answer")
            if chunk is None:
                continue
            if chunk.content:
                self.answer.text += chunk.content
                yield chunk.content
            if chunk.usage_metadata:
                self._finish(chunk, started)

    def _finish(self, chunk, started: float) -> None:
        meta = chunk.response_metadata
        self.answer.prompt_tokens = chunk.usage_metadata["input_tokens"]
        self.answer.completion_tokens = chunk.usage_metadata["output_tokens"]
        self.answer.model = meta.get("model_name", "")
        self.answer.tokens_per_s = round(meta.get("tokens_per_s", 0.0), 2)
        self.answer.notes = list(meta.get("notes", []))
        # Times are from the start of the whole chain, retrieval included.
        self.answer.total_s = round(time.perf_counter() - started, 3)
        if meta.get("ttft_s") is not None:
            self.answer.ttft_s = round(self.answer.retrieval_s + meta["ttft_s"], 3)

    def collect(self) -> Answer:
        for _ in self:
            pass
        return self.answer
