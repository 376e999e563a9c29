"""The four modes as LCEL runnables over one chat model, and the stream that fills in their Answer (core/common/vocabulary.py).

base and finetuned share the plain prompt; rag and hybrid share the grounded prompt. finetuned and
hybrid bind an adapter (the scenario's active one unless another is chosen); base and rag bind none.
Nothing else differs. The prompt half of each chain (`build_prompt_chain`) is also what the compare
view uses before it generates every column in one batch.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough

from core.answers.chat_model import LocalChatModel
from core.answers.prompts import GROUNDED_PROMPT, NO_SOURCE_ANSWER, NO_SOURCE_NOTE, PLAIN_PROMPT, format_sources
from core.answers.release import Hold, Release, Shown
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


@dataclass(frozen=True)
class AnswerRules:
    """What happens to an answer besides generating it, the same for every mode and column."""

    finish: Callable[[Answer], None] | None = None  # on the complete answer: its price, the figure and topic checks
    hold: Hold | None = None  # text those checks would withhold, kept off the screen while it streams
    stop_when: Callable[[str], str | None] | None = None  # a reason to end it early (core.text.derailment)


class AnswerStream:
    """Iterate for the answer's text pieces; afterwards `.answer` holds the complete Answer.

    The rules' `stop_when` ends the answer early, as `stop()` does from another thread; a stopped answer
    keeps its text so far, says why in `answer.stopped`, counts its pieces as its tokens (one per token,
    bar characters split across tokens) and still goes through `finish`. `shown()` is what a page may
    show of it yet (core.answers.release)."""

    def __init__(
        self,
        chain: Runnable,
        inputs: dict,
        answer: Answer,
        rules: AnswerRules | None = None,
        describe_error: Callable[[Exception], str | None] | None = None,
    ):
        rules = rules or AnswerRules()
        self.chain = chain
        self.inputs = inputs
        self.answer = answer
        self.finish = rules.finish
        self.describe_error = describe_error  # a server's failure -> words for answer.error; None: raise
        self.stop_when = rules.stop_when
        self.release = Release(answer, rules.hold)
        self._stop_reason = ""

    def stop(self, reason: str) -> None:
        """Ends the answer at its next piece (callable from another thread)."""
        self._stop_reason = self._stop_reason or reason

    def shown(self) -> Shown:
        return self.release.shown()

    def __iter__(self) -> Iterator[str]:
        started = time.perf_counter()
        first_token_at = None
        model_asked = True
        pieces = 0
        parts = self.chain.stream(self.inputs)
        try:
            for part in parts:
                if "sources" in part:
                    self.answer.sources = part["sources"]
                    self.answer.retrieval_s = round(time.perf_counter() - started, 3)
                chunk = part.get("answer")
                if chunk is None:
                    continue
                if chunk.content:
                    first_token_at = first_token_at or time.perf_counter()
                    self.answer.text += chunk.content
                    pieces += 1
                    if self.stop_when and not self._stop_reason:
                        self._stop_reason = self.stop_when(self.answer.text) or ""
                    yield chunk.content
                if chunk.usage_metadata:
                    meta = chunk.response_metadata
                    model_asked = meta.get("model_asked", True)
                    stats = GenerationStats.from_chunk(chunk.usage_metadata, meta)
                    self.answer.record(model=meta.get("model_name", ""), stats=stats, started=started)
                elif self._stop_reason:  # the model's row ends when the stream closes, below
                    self.answer.stopped = self._stop_reason
                    self.answer.completion_tokens = pieces  # one piece per token, bar split characters
                    break
        except Exception as error:
            message = self.describe_error(error) if self.describe_error else None
            if message is None:
                raise
            self.answer.error = message
        finally:
            parts.close()
        fill_in_timing(self.answer, started, first_token_at, model_asked)
        if self.finish and not self.answer.error:
            self.finish(self.answer)
        self.release.final = True

    def collect(self) -> Answer:
        for _ in self:
            pass
        return self.answer
