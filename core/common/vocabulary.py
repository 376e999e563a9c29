"""The Lab's vocabulary: the four modes and their labels, the Answer every mode returns, a retrieved
Source and the Decoding setup all modes share. Plain dataclasses with no heavy imports, so the router,
the command line and the pages can speak the language without loading torch, Chroma or the model."""

import time
from dataclasses import asdict, dataclass, field

MODES = ("base", "rag", "finetuned", "hybrid")
RETRIEVAL_MODES = ("rag", "hybrid")
ADAPTER_MODES = ("finetuned", "hybrid")
MODE_LABELS = {"base": "Base", "rag": "RAG", "finetuned": "Fine-tuned", "hybrid": "Hybrid"}


@dataclass
class Answer:
    mode: str
    question: str
    text: str = ""
    sources: list = field(default_factory=list)  # Source
    adapter: str | None = None  # the adapter's registry name; None for base and rag
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_s: float = 0.0
    ttft_s: float | None = None  # from the question to the first token, retrieval included
    total_s: float = 0.0
    tokens_per_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    withheld_draft: str = ""  # what the model wrote when a check replaced it (core.answers.figure_check)
    backend: str = "local"  # local, or openai (an OpenAI-compatible server)
    server: str = ""  # the server's host for the openai backend
    cost_usd: float | None = None  # where the model's price is known
    error: str = ""  # why no (complete) answer came, in words; the other columns are unaffected
    stopped: str = ""  # why it was stopped before its end (it derailed, or by hand), in words; "" if it ended

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sources"] = [s.to_dict() for s in self.sources]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Answer":
        """An answer saved with to_dict; fields it does not know (from another version) are dropped."""
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**{**known, "sources": [Source(**s) for s in known.get("sources", [])]})

    def record(self, *, model: str, stats: "GenerationStats", started: float) -> None:
        """Fills in the generation figures; the answer's times are counted from `started` (the question),
        the stats' time to first token from the start of generation."""
        self.model = model or self.model  # some servers name no model in their stream
        self.prompt_tokens = stats.prompt_tokens
        self.completion_tokens = stats.completion_tokens
        self.tokens_per_s = round(stats.tokens_per_s, 2)
        self.notes = list(stats.notes)
        self.total_s = round(time.perf_counter() - started, 3)
        if stats.ttft_s is not None:
            self.ttft_s = round(self.retrieval_s + stats.ttft_s, 3)


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


@dataclass(frozen=True)
class Source:
    """A retrieved chunk, its cosine relevance (1.0 = same meaning) and, from a hybrid search, its place
    in the dense, the lexical (BM25) and the fused ranking (1 = first; None: not in that ranking's top)."""

    name: str
    text: str
    score: float
    chunk: int
    dense_rank: int | None = None
    lexical_rank: int | None = None
    fused_rank: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decoding:
    """One decoding setup shared by every mode. The repetition penalty counts only the answer's own
    tokens: penalising the prompt would stop RAG from quoting its sources. `min_new_tokens` is for
    benchmarks that need equal-length answers."""

    max_new_tokens: int = 160
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    seed: int = 0
    min_new_tokens: int = 0

    @property
    def batch_key(self) -> tuple:
        """Rows whose decodings share this key can share a batch (token limits are per row)."""
        return (self.temperature, self.top_p, self.repetition_penalty, self.seed)


@dataclass
class GenerationStats:
    """What one generation reports: token counts, time to first token and total time (from the start of
    generation), and notes (a prompt cut to fit, the token limit reached). Carried from the engine (or a
    server's last chunk) to the Answer unchanged; LangChain's chunk metadata holds it as a dict."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - (self.ttft_s or 0.0)
        if self.completion_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_s

    def to_metadata(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_s": self.ttft_s,
            "total_s": self.total_s,
            "tokens_per_s": self.tokens_per_s,
            "notes": list(self.notes),
        }

    @classmethod
    def from_chunk(cls, usage: dict, metadata: dict) -> "GenerationStats":
        """The stats of a final chunk (its usage_metadata and response_metadata); a server reports only
        token counts, and the timing is then measured where it streams (fill_in_timing)."""
        return cls(
            prompt_tokens=usage["input_tokens"],
            completion_tokens=usage["output_tokens"],
            ttft_s=metadata.get("ttft_s"),
            total_s=metadata.get("total_s") or 0.0,
            notes=list(metadata.get("notes") or []),
        )
