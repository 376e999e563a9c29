"""Side by side: one question put to several columns in ONE batched generation, streamed per column
(or, on a server backend, one concurrent request per column).

A column is a mode plus, for finetuned and hybrid, the adapter it uses (so two adapters can be
compared too). Retrieval runs once for all retrieval columns; every row shares the decoding setup
and seed, so each column's greedy answer equals what its mode page gives alone.
"""

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.runnables import Runnable

from core.answers.modes import AnswerRules, needs_model, no_source_answer
from core.answers.release import Release, Shown
from core.common.vocabulary import ADAPTER_MODES, MODE_LABELS, RETRIEVAL_MODES, Answer, Decoding, GenerationStats
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
    done: bool = False  # the column's answer is final (checked): what it shows is `answers[column].text`


class ComparisonStream:
    """Iterate for ColumnText pieces as the batch decodes; afterwards `.answers` holds one Answer per
    column (same order) and `.wall_s` the time from the question to the last token of the batch.

    A column ends early when the rules' `stop_when` (core.text.derailment) gives a reason
    for its text, or when `stop(column, reason)` is called between pieces. Its answer keeps the text so
    far and says why in `answer.stopped`. Its row goes on in the batch, unseen, until the other columns
    end, and the whole request is closed then: the batch the other rows decode in stays as it was, so
    stopping one column never changes another's answer, even when sampling. The comparison ends when
    the last column still shown ends. A stopped answer's token count is its pieces (one per token, bar
    characters split across tokens); its prompt size is not known."""

    def __init__(
        self,
        engine: Engine,
        prompt_chains: list[Runnable],
        inputs: list[dict],
        answers: list[Answer],
        engine_adapters: list[str | None],
        decoding: Decoding,
        rules: AnswerRules | None = None,
    ):
        rules = rules or AnswerRules()
        self.engine = engine
        self.prompt_chains = prompt_chains
        self.inputs = inputs
        self.answers = answers
        self.engine_adapters = engine_adapters
        self.decoding = decoding
        self.finish = rules.finish  # run on each complete answer (the figure check)
        self.stop_when = rules.stop_when
        self.releases = [Release(answer, rules.hold) for answer in answers]
        self.wall_s = 0.0
        self._stops: dict[int, str] = {}  # column -> why it was asked to stop
        self._ended: set[int] = set()

    def stop(self, column: int, reason: str) -> None:
        """Ends a column that is still answering, before the next piece is read."""
        if column not in self._ended:
            self._stops.setdefault(column, reason)

    def shown(self, column: int) -> Shown:
        """What a page may show of the column's answer now (core.answers.release)."""
        return self.releases[column].shown()

    @property
    def ended(self) -> set[int]:
        """The columns whose answers are final."""
        return set(self._ended)

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
            yield self._end(column)
        first_text_at: dict[int, float] = {}
        pieces = dict.fromkeys(row_columns, 0)
        generation_started = time.perf_counter()
        events = self.engine.stream_rows(rows, self.decoding) if rows else (event for event in ())
        try:
            while len(self._ended) < len(self.answers):
                event = next(events, None)
                if event is None:
                    break
                column = row_columns[event.row]
                answer = self.answers[column]
                if column in self._ended:  # stopped: its row goes on unseen until the others end
                    continue
                if isinstance(event, TextEvent):
                    answer.text += event.text
                    first_text_at.setdefault(column, time.perf_counter())
                    pieces[column] += 1
                    yield ColumnText(column, event.text)
                    if self.stop_when and (reason := self.stop_when(answer.text)):
                        self.stop(column, reason)
                elif isinstance(event, DoneEvent):
                    stats = event.stats
                    if stats.ttft_s is not None:  # count from the question, as the user waited
                        stats = replace(stats, ttft_s=stats.ttft_s + self._since(generation_started, answer, started))
                    answer.record(model=self.engine.model_name, stats=stats, started=started)
                    yield self._end(column)
                # Asked between pieces, maybe from another thread: list() copies the dict in one step.
                for stopped in [c for c in list(self._stops) if c not in self._ended]:
                    self._record_stop(stopped, started, first_text_at.get(stopped), pieces[stopped])
                    yield self._end(stopped)
        finally:
            events.close()  # rows still decoding (stopped columns) leave the batch
        self.wall_s = round(time.perf_counter() - started, 3)

    @staticmethod
    def _since(moment: float, answer: Answer, started: float) -> float:
        """`moment` counted as Answer.record expects stats' times: from the question, less retrieval."""
        return moment - started - answer.retrieval_s

    def _record_stop(self, column: int, started: float, first_text_at: float | None, pieces: int) -> None:
        answer = self.answers[column]
        now = time.perf_counter()
        stats = GenerationStats(
            completion_tokens=pieces,
            ttft_s=None if first_text_at is None else self._since(first_text_at, answer, started),
            total_s=self._since(now, answer, started),
        )
        answer.record(model=self.engine.model_name, stats=stats, started=started)
        answer.stopped = self._stops[column]

    def _end(self, column: int) -> ColumnText:
        """The column's answer is complete: checked, and final on screen."""
        answer = self.answers[column]
        if self.finish:
            self.finish(answer)
        self.releases[column].final = True
        self._ended.add(column)
        return ColumnText(column, "", done=True)

    def collect(self) -> list[Answer]:
        for _ in self:
            pass
        return self.answers


class ConcurrentComparisonStream(ComparisonStream):
    """The same interface for a server backend: each column is its own streamed request, all running at
    once in threads; a column that fails carries its error and the others go on. A stopped column's
    request ends at its next piece."""

    def __init__(self, streams: list, decoding: Decoding):  # core.answers.modes.AnswerStream, one per column
        self.streams = streams
        self.decoding = decoding
        self.answers = [stream.answer for stream in streams]
        self.wall_s = 0.0
        self._ended = set()

    def stop(self, column: int, reason: str) -> None:
        self.streams[column].stop(reason)

    def shown(self, column: int) -> Shown:
        return self.streams[column].shown()

    def __iter__(self) -> Iterator[ColumnText]:
        started = time.perf_counter()
        pieces: queue.Queue = queue.Queue()
        crashes = []

        def run(column: int, stream) -> None:
            try:
                for text in stream:
                    pieces.put(ColumnText(column, text))
            except Exception as error:  # server failures are the answer's error already: this is a bug
                crashes.append(error)
            finally:
                pieces.put(ColumnText(column, "", done=True))

        threads = [threading.Thread(target=run, args=(c, s), daemon=True) for c, s in enumerate(self.streams)]
        for thread in threads:
            thread.start()
        running = len(threads)
        while running:
            piece = pieces.get()
            if piece.done:
                running -= 1
                self._ended.add(piece.column)
            yield piece
        self.wall_s = round(time.perf_counter() - started, 3)
        if crashes:
            raise crashes[0]
