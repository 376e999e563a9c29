"""The four modes as LCEL runnables over one chat model, and the stream that fills in their Answer (core/common/vocabulary.py).

base and finetuned share the plain prompt; rag and hybrid share the grounded prompt. finetuned and
hybrid bind an adapter (the scenario's active one unless another is chosen); base and rag bind none.
Nothing else differs. The prompt half of each chain (`build_prompt_chain`) is also what the compare
view uses before it generates every column in one batch.
"""

import time
from collections.abc import Callable, Iterator
from operator import itemgetter

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough

from core.answers.chat_model import LocalChatModel
from core.answers.prompts import GROUNDED_PROMPT, NO_SOURCE_ANSWER, NO_SOURCE_NOTE, PLAIN_PROMPT, format_sources
from core.common.vocabulary import RETRIEVAL_MODES, Answer, GenerationStats, fill_in_timing


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
                    stats = GenerationStats.from_chunk(chunk.usage_metadata, meta)
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
