"""BM25 over a knowledge base's committed chunks, and reciprocal rank fusion with the dense ranking.

Dense MiniLM vectors miss exact strings: a question naming error code RC-4031 can rank a chunk about
RC-4032 first. BM25 (bm25s) scores the exact tokens ("4031"), and reciprocal rank fusion merges the
two rankings without comparing their scores, which live on different scales. Fusion alone still lets
a chunk that is close in meaning beat the one that names the code (dense #1 and BM25 #2 outscore BM25
#1 and dense #5), so a question that names an identifier (a word of 3+ characters with a digit: an
error code, SKU, clause number, price) gets the chunks containing every identifier it names first,
in fused order, then the rest.

The index is derived, never stored: it is built from the chunks Chroma holds for the texts the
manifest has committed, and rebuilt whenever that committed set changes (its signature is the
collection generation plus every document's current text). So it obeys the knowledge base's commit
protocol by construction: a document is searchable lexically exactly when it is searchable densely,
mid-ingest, after a delete or a re-index, and after a crash, with nothing on disk to repair.
Building costs a few milliseconds per hundred chunks, once per change, per process.
"""

import re
import threading
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer

RRF_K = 60  # the usual constant of reciprocal rank fusion (Cormack et al., 2009): damps the first ranks


_IDENTIFIER = re.compile(r"^(?=.*\d).{3,}$")
_STEMMER = Stemmer.Stemmer("english")  # "returns" and "return" are one word to BM25; codes stay as they are


def tokenize(texts: list[str]) -> list[list[str]]:
    """Stemmed lower-case words of 2+ characters without English stop words: "RC-4031" gives "rc", "4031"."""
    return bm25s.tokenize(texts, return_ids=False, show_progress=False, stemmer=_STEMMER.stemWords)


def identifiers(query: str) -> set[str]:
    """The query's words that name something exactly: 3+ characters with a digit ("4031", "e1207", "sku42")."""
    return {word for word in tokenize([query])[0] if _IDENTIFIER.match(word)}


@dataclass(frozen=True)
class Chunk:
    id: str
    name: str
    text: str
    chunk: int


class LexicalIndex:
    """One knowledge base's BM25 index, rebuilt on demand when the committed chunks change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._chunks: list[Chunk] = []
        self._words: dict[str, set[str]] = {}  # chunk id -> its words
        self._vocabulary: set[str] = set()
        self._bm25: bm25s.BM25 | None = None

    def ranked(self, query: str, signature: tuple, load_chunks, n: int) -> list[Chunk]:
        """The `n` chunks with the highest BM25 score for `query` (score > 0), best first. `load_chunks()`
        returns the committed chunks; it is called only when `signature` differs from the last build's."""
        with self._lock:
            self._ensure(signature, load_chunks)
            chunks, bm25 = self._chunks, self._bm25
        words = tokenize([query])[0]
        if bm25 is None or not words:
            return []
        scores = bm25.get_scores(words)
        best = np.argsort(-scores, kind="stable")[:n]
        return [chunks[i] for i in best if scores[i] > 0]

    def vocabulary(self, signature: tuple, load_chunks) -> set[str]:
        """Every word (stemmed) of the committed chunks."""
        with self._lock:
            self._ensure(signature, load_chunks)
            return self._vocabulary

    def _ensure(self, signature: tuple, load_chunks) -> None:
        if signature != self._signature:
            self._build(load_chunks())
            self._signature = signature

    def names_all(self, chunk_id: str, words: set[str]) -> bool:
        """Whether the chunk (as of the last build) contains every one of `words`."""
        return words <= self._words.get(chunk_id, set())

    def _build(self, chunks: list[Chunk]) -> None:
        self._chunks = sorted(chunks, key=lambda c: (c.name, c.chunk))  # a stable order breaks ties alike
        tokens = tokenize([c.text for c in self._chunks]) if self._chunks else []
        self._words = {c.id: set(words) for c, words in zip(self._chunks, tokens, strict=True)}
        self._vocabulary = set().union(*self._words.values())
        self._bm25 = None
        if self._chunks:
            self._bm25 = bm25s.BM25()
            self._bm25.index(tokens, show_progress=False)


def fuse(rankings: list[list[str]], weights: list[float]) -> list[str]:
    """Reciprocal rank fusion: an id's score is the sum over rankings of weight / (RRF_K + rank), rank
    counted from 1. Ties keep the order of first appearance (the dense ranking comes first)."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (RRF_K + rank)
    return sorted(scores, key=lambda item: -scores[item])
