"""Side by side: one question put to several columns in ONE batched generation, streamed per column
(or, on a server backend, one concurrent request per column).

A column is a mode plus, for finetuned and hybrid, the adapter it uses (so two adapters can be
compared too). Retrieval runs once for all retrieval columns; every row shares the decoding setup
and seed, so each column's greedy answer equals what its mode page gives alone.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.runnables import Runnable

from core.answers.modes import needs_model, no_source_answer
from core.common.vocabulary import ADAPTER_MODES, MODE_LABELS, RETRIEVAL_MODES, Answer, Decoding
from core.engine.engine import DoneEvent, Engine, Row, TextEvent


@dataclass(frozen=True)
class Column:
    mode: str
    adapter: str | None = None  # registry name for finetuned/hybrid; None means the active adapter

    @property
    def key(self) -> str:
        """Stable id of the column: its conversation and its votes are kept under this."""
        return f"{self.mode}:{self.adapter}" if self.adapter else self.mode

    def label(self, adapter_shown: bool = False) -> str:
        if adapter_shown and self.mode in ADAPTER_MODES and self.adapter:
            return f"{MODE_LABELS[self.mode]} · {self.adapter}"
        return MODE_LABELS[self.mode]

    @classmethod
    def from_key(cls, key: str) -> "Column":
        mode, _, adapter = key.partition(":")
        return cls(mode, adapter or None)


@dataclass
class ColumnText:
    column: int
    text: str


class ComparisonStream:
    """Iterate for ColumnText pieces as the batch decodes; afterwards `.answers` holds one Answer per
    column (same order) and `.wall_s` the time from the question to the last token of the batch."""

    def __init__(
        self,
        engine: Engine,
        prompt_chains: list[Runnable],
        inputs: list[dict],
        answers: list[Answer],
        engine_adapters: list[str | None],
        decoding: Decoding,
        finish: Callable[[Answer], None] | None = None,
    ):
        self.engine = engine
        self.prompt_chains = prompt_chains
        self.inputs = inputs
        self.answers = answers
        self.engine_adapters = engine_adapters
        self.decoding = decoding
        self.finish = finish  # run on each complete answer (the figure check)
        self.wall_s = 0.0

    def __iter__(self) -> Iterator[ColumnText]:
        started = time.perf_counter()
        rows, row_columns, declined = [], [], []  # row_columns[i]: the column of batch row i
        for column, (chain, inputs, answer, adapter) in enumerate(
            zip(self.prompt_chains, self.inputs, self.answers, self.engine_adapters, strict=True)
        ):
            prompt = chain.invoke(inputs)
            answer.sources = prompt["sources"]
            if needs_model(answer.mode, answer.sources):
                rows.append(Row(convert_to_openai_messages(prompt["messages"].to_messages()), adapter))
                row_columns.append(column)
            else:
                declined.append(column)
        prompts_s = round(time.perf_counter() - started, 3)  # retrieval, done once, is nearly all of it
        for answer in self.answers:
            if answer.mode in RETRIEVAL_MODES:
                answer.retrieval_s = prompts_s
        for column in declined:  # no source good enough: the fixed answer, without the model
            answer, chunk = self.answers[column], no_source_answer()
            answer.text, answer.notes = chunk.content, list(chunk.response_metadata["notes"])
            answer.total_s = prompts_s
            yield ColumnText(column, answer.text)
        generation_started = time.perf_counter()
        for event in self.engine.stream_rows(rows, self.decoding) if rows else ():
            column = row_columns[event.row]
            answer = self.answers[column]
            if isinstance(event, TextEvent):
                answer.text += event.text
                yield ColumnText(column, event.text)
            elif isinstance(event, DoneEvent):
                stats = event.stats
                if stats.ttft_s is not None:  # count from the question, as the user waited
                    stats = replace(stats, ttft_s=stats.ttft_s + generation_started - started - answer.retrieval_s)
                answer.record(model=self.engine.model_name, stats=stats, started=started)
                if self.finish:
                    self.finish(answer)
        self.wall_s = round(time.perf_counter() - started, 3)

    def collect(self) -> list[Answer]:
        for _ in self:
            pass
        return self.answers


class ConcurrentComparisonStream(ComparisonStream):
    """The same interface for a server backend: each column is its own streamed request, all running at
    once in threads; a column that fails carries its error and the others go on."""

    def __init__(self, streams: list, decoding: Decoding):  # core.answers.modes.AnswerStream, one per column
        self.streams = streams
        self.decoding = decoding
        self.answers = [stream.answer for stream in streams]
        self.wall_s = 0.0

    def __iter__(self) -> Iterator[ColumnText]:
        started = time.perf_counter()
        pieces: queue.Queue = queue.Queue()
        done, crashes = object(), []

        def run(column: int, stream) -> None:
            try:
                for text in stream:
                    pieces.put(ColumnText(column, text))
            except Exception as error:  # server failures are the answer's error already: this is a bug
                crashes.append(error)
            finally:
                pieces.put(done)

        threads = [threading.Thread(target=run, args=(c, s), daemon=True) for c, s in enumerate(self.streams)]
        for thread in threads:
            thread.start()
        running = len(threads)
        while running:
            piece = pieces.get()
            if piece is done:
                running -= 1
            else:
                yield piece
        self.wall_s = round(time.perf_counter() - started, 3)
        if crashes:
            raise crashes[0]
