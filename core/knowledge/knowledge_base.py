"""One knowledge base per scenario: documents in, chunks in Chroma, scored search (similarity or MMR),
with BM25 fused in (core.knowledge.lexical_index) so exact identifiers are found.

The manifest (`kb_manifest`) decides what exists: an ingest writes all of a document's chunks, then
commits its row, then removes the previous version's chunks; searches keep only chunks of committed
texts, so a document is seen whole or not at all, even mid-ingest or after a crash. Re-indexing
with a new chunk size builds a second collection and switches to it in one commit.

Chroma is used directly (not through langchain-chroma) so that one query returns scores and, for
MMR, the candidates' vectors; embeddings, splitting and MMR come from LangChain.

One process at a time writes an embedded store: every write (one document, a delete, a re-index,
the clean-up on open) holds a lock file beside the store, and a second process that wants to write
meanwhile gets `KnowledgeBaseBusy` after a short wait instead of interleaving with it. Reads never
wait for it.
"""

import contextlib
import hashlib
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import chromadb
import numpy as np
from filelock import FileLock, Timeout
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.common.vocabulary import Source
from core.knowledge.lexical_index import Chunk, LexicalIndex, fuse, identifiers
from core.knowledge.loaders import SUPPORTED_SUFFIXES, ParsedText, UnreadableDocument, parse_file
from core.knowledge.manifest import DocumentInfo, Manifest, RetrievalSettings, text_sha

EMBED_BATCH = 64  # chunks embedded and written per step (progress is reported per step)
# How long a write waits for another process's write to the same embedded store before giving up.
# Writes are one document each, so a wait this short is enough unless the other one is a big upload
# or a re-index, and then the user is told at once rather than left with a spinner.
WRITER_WAIT_S = 3.0

_clients: dict[str, chromadb.ClientAPI] = {}
_writer_locks: dict[str, FileLock] = {}
_clients_lock = threading.Lock()


class ChromaUnavailable(RuntimeError):
    """The configured Chroma server did not answer."""


class KnowledgeBaseBusy(RuntimeError):
    """Another process is writing the embedded store; the message says which, fit to show a user."""


def chroma_client(store_dir: Path, host: str | None = None, port: int = 8000) -> chromadb.ClientAPI:
    """The embedded store in `store_dir` (one persistent client per folder and process, as Chroma
    expects), or, when `host` is set, a Chroma server: the way several app processes share one index."""
    key = f"http://{host}:{port}" if host else str(Path(store_dir).resolve())
    with _clients_lock:
        if key not in _clients:
            settings = chromadb.config.Settings(anonymized_telemetry=False)
            if host:
                try:
                    _clients[key] = chromadb.HttpClient(host=host, port=port, settings=settings)
                except Exception as error:  # chromadb raises ValueError or httpx errors when it can't connect
                    raise ChromaUnavailable(
                        f"The Chroma server at {host}:{port} does not answer ({type(error).__name__}). "
                        "Start it (chroma run --path DIR --host HOST --port PORT) or unset LAB_CHROMA_HOST."
                    ) from error
            else:
                Path(key).mkdir(parents=True, exist_ok=True)
                _clients[key] = chromadb.PersistentClient(path=key, settings=settings)
        return _clients[key]


def writer_lock(client: chromadb.ClientAPI) -> FileLock | None:
    """The lock that lets one process at a time write an embedded store (None for a server, which
    orders writes itself). One object per store and process, shared by its threads and scenarios.

    It is held per write operation, not for the life of the writing process. Process-lifetime would
    make the first process to write the only one that ever can: a second app process, `python -m core
    kb add` or an evaluation job's ingest would fail until it exits. Per operation they take turns,
    and a process killed mid-write frees the lock with its file descriptor (flock): there is never a
    stale lock to clear. Taking turns is safe because Chroma 1.x writes through its SQLite log, and a
    process that writes first brings its vector index up to date from that log, other processes'
    writes included. What it does not give: a process that has not written since another one did
    searches an index without the other's newest chunks until it writes or restarts (counts and
    chunk lists are current). Several app processes on one index are what a Chroma server is for.
    """
    settings = client.get_settings()
    if not settings.is_persistent:
        return None
    path = str(Path(settings.persist_directory).resolve()) + ".lock"  # beside the store, not among Chroma's files
    with _clients_lock:
        if path not in _writer_locks:
            # thread_local=False: the threads of this process share the hold; KnowledgeBase orders them.
            _writer_locks[path] = FileLock(path, thread_local=False, preserve_lock_file=True, on_acquired=_write_pid)
        return _writer_locks[path]


def _write_pid(fd: int) -> None:
    """Records the holder in the lock file, for the message the next writer gets."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _holder(lock: FileLock) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f"another process (pid {int(Path(lock.lock_file).read_text())})"
    return "another process"


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)  # documents new or changed
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # document -> reason
    notes: dict[str, list[str]] = field(default_factory=dict)  # document -> what parsing changed
    chunks_added: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ReindexReport:
    chunks_before: int
    chunks_after: int
    seconds: float


def split_text(text: str, chunk_size: int, chunk_overlap: int) -> list[str]:
    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    return [chunk for chunk in splitter.split_text(text) if chunk.strip()]


def chunk_id(name: str, sha: str, index: int) -> str:
    return hashlib.sha256(f"{name}\0{sha}\0{index}".encode()).hexdigest()[:32]


class KnowledgeBase:
    def __init__(
        self,
        data_dir: Path,
        scenario: str,
        embeddings: Embeddings,
        defaults: RetrievalSettings,
        client: chromadb.ClientAPI | None = None,  # default: the embedded store in the data dir
    ):
        self.scenario = scenario
        self.embeddings = embeddings
        self.manifest = Manifest(data_dir, scenario, defaults)
        self.client = client or chroma_client(Path(data_dir) / "chroma")
        self._write_lock = threading.RLock()  # this process's threads, one write at a time
        self._store_lock = writer_lock(self.client)  # other processes
        self._collections: dict[int, object] = {}
        self._lexical = LexicalIndex()
        try:
            with self._writing(wait_s=0):
                self._reconcile()
        except KnowledgeBaseBusy:
            pass  # the process writing now may be mid-document: its chunks are not strays; the next open tidies

    @contextlib.contextmanager
    def _writing(self, wait_s: float = WRITER_WAIT_S):
        """Held around every write to the store; raises KnowledgeBaseBusy if another process keeps it."""
        with self._write_lock:
            if self._store_lock is None:
                yield
                return
            try:
                self._store_lock.acquire(timeout=wait_s)
            except Timeout:
                raise KnowledgeBaseBusy(
                    f"The knowledge base is being written by {_holder(self._store_lock)}; "
                    "try again when it has finished. Searches still work meanwhile."
                ) from None
            try:
                yield
            finally:
                self._store_lock.release()

    # --- settings -------------------------------------------------------------------------------
    @property
    def settings(self) -> RetrievalSettings:
        return self.manifest.settings()

    def save_search_settings(self, settings: RetrievalSettings) -> None:
        """Search settings take effect at once; chunking changes need `reindex`."""
        current = self.settings
        if (settings.chunk_size, settings.chunk_overlap) != (current.chunk_size, current.chunk_overlap):
            raise ValueError("chunk size and overlap change only by re-indexing")
        self.manifest.save_settings(settings)

    def _collection(self, generation: int | None = None):
        """The live collection (or a given generation's); handles are kept, as opening one costs ~2 ms."""
        generation = self.manifest.generation() if generation is None else generation
        if generation not in self._collections:
            self._collections[generation] = self.client.get_or_create_collection(
                f"kb_{self.scenario}_g{generation}", metadata={"hnsw:space": "cosine"}
            )
        return self._collections[generation]

    # --- ingest ---------------------------------------------------------------------------------
    def sync_folder(self, folder: Path, progress=None) -> IngestReport:
        """Imports a scenario's docs/: new files, and files changed since they were imported. A document
        the user deleted or edited here stays as the user left it until its file changes."""
        started = time.perf_counter()
        report = IngestReport()
        known = {d.name: d for d in self.manifest.documents(include_deleted=True)}
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        for done, path in enumerate(files, 1):
            name = path.relative_to(folder).as_posix()
            try:
                parsed = parse_file(path, name)
            except UnreadableDocument as error:
                report.failed[name] = str(error)
            else:
                source_sha = text_sha(parsed.text)
                if name in known and known[name].origin_sha == source_sha:
                    report.unchanged.append(name)
                else:
                    report.chunks_added += self.add_text(name, parsed, origin_sha=source_sha)
                    report.added.append(name)
                    if parsed.notes:
                        report.notes[name] = parsed.notes
            if progress:
                progress(done, len(files), name)
        report.seconds = time.perf_counter() - started
        return report

    def add_text(self, name: str, parsed: ParsedText, origin_sha: str | None = None, progress=None) -> int:
        """Adds or replaces document `name`; returns the chunks written (0: same text already indexed).
        `origin_sha` marks an import from the scenario's docs/ (the file's text); an upload or edit
        keeps the document's origin. progress(done, total) is called as chunks are embedded.
        Raises KnowledgeBaseBusy, changing nothing, while another process writes the store."""
        with self._writing():
            sha = self.manifest.save_text(parsed.text)
            current = self.manifest.document(name)
            if origin_sha is None and current:
                origin, origin_sha = current.origin, current.origin_sha
            else:
                origin = "scenario" if origin_sha else "upload"
            if current and current.text_sha == sha:
                if current.origin_sha != origin_sha:
                    self.manifest.commit(name, sha, origin, origin_sha, current.chunks, current.chars, parsed.notes)
                return 0
            settings = self.settings
            chunks = self._write_chunks(self._collection(), name, sha, parsed.text, settings, progress)
            self.manifest.commit(name, sha, origin, origin_sha, chunks, len(parsed.text), parsed.notes)
            self._delete_chunks(name, keep_sha=sha)
        return chunks

    def delete_document(self, name: str) -> int:
        """Removes a document and its chunks; returns how many chunks went."""
        with self._writing():
            document = self.manifest.document(name)
            if document is None or document.text_sha is None:
                raise KeyError(f"no document named {name!r} in {self.scenario}")
            self.manifest.mark_deleted(name)
            return self._delete_chunks(name)

    def restore_text(self, name: str, sha: str) -> int:
        """Puts back an earlier text of a document (Undo of an edit)."""
        return self.add_text(name, ParsedText(self.manifest.read_text(sha)))

    def reindex(self, chunk_size: int, chunk_overlap: int, progress=None) -> ReindexReport:
        """Re-chunks every document into a fresh collection, then switches to it in one commit."""
        started = time.perf_counter()
        with self._writing():
            old = self.settings
            new = RetrievalSettings.from_dict(
                {**old.to_dict(), "chunk_size": chunk_size, "chunk_overlap": chunk_overlap}
            )
            generation = self.manifest.generation() + 1
            self._drop_collection(generation)  # a leftover from a re-index that crashed
            target = self._collection(generation)
            documents = self.manifest.documents()
            counts = {}
            for done, document in enumerate(documents, 1):
                text = self.manifest.read_text(document.text_sha)
                counts[document.name] = self._write_chunks(target, document.name, document.text_sha, text, new)
                if progress:
                    progress(done, len(documents), document.name)
            before = self.chunk_count()
            self.manifest.switch_generation(new, generation, counts)
            self._drop_collection(generation - 1)
        return ReindexReport(before, sum(counts.values()), round(time.perf_counter() - started, 3))

    def count_chunks(self, chunk_size: int, chunk_overlap: int) -> int:
        """How many chunks a re-index with these settings would make (splitting only, no embedding)."""
        return sum(
            len(split_text(self.manifest.read_text(d.text_sha), chunk_size, chunk_overlap))
            for d in self.manifest.documents()
        )

    def _write_chunks(
        self, collection, name: str, sha: str, text: str, settings: RetrievalSettings, progress=None
    ) -> int:
        chunks = split_text(text, settings.chunk_size, settings.chunk_overlap)
        ingested_at = time.time()
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start : start + EMBED_BATCH]
            collection.upsert(
                ids=[chunk_id(name, sha, start + i) for i in range(len(batch))],
                documents=batch,
                embeddings=self.embeddings.embed_documents(batch),
                metadatas=[
                    {"source": name, "chunk": start + i, "text_sha": sha, "ingested_at": ingested_at}
                    for i in range(len(batch))
                ],
            )
            if progress:
                progress(start + len(batch), len(chunks))
        return len(chunks)

    def _delete_chunks(self, name: str, keep_sha: str | None = None) -> int:
        collection = self._collection()
        where = {"source": name} if keep_sha is None else {"$and": [{"source": name}, {"text_sha": {"$ne": keep_sha}}]}
        ids = collection.get(where=where, include=[])["ids"]
        if ids:
            collection.delete(ids=ids)
        return len(ids)

    def _reconcile(self) -> None:
        """Makes the store match the manifest. Chunks of uncommitted texts (a crash mid-ingest) and
        unfinished re-index collections go; a committed document whose chunks are missing (a data dir
        moved to a new Chroma server, a lost store) is embedded again from its stored text."""
        live = f"kb_{self.scenario}_g{self.manifest.generation()}"
        for collection in self.client.list_collections():
            name = getattr(collection, "name", collection)
            unfinished = name.startswith(f"kb_{self.scenario}_g") and name != live
            if unfinished or name == f"kb_{self.scenario}":  # the latter: the store's layout before manifests
                self.client.delete_collection(name)
        current = self._current_shas()
        collection = self._collection()
        found = collection.get(include=["metadatas"])
        stray = [
            i
            for i, m in zip(found["ids"], found["metadatas"], strict=True)
            if current.get(m["source"]) != m["text_sha"]
        ]
        if stray:
            collection.delete(ids=stray)
        present = Counter(m["source"] for m in found["metadatas"] if current.get(m["source"]) == m["text_sha"])
        for document in self.manifest.documents():
            if present[document.name] != document.chunks:
                text = self.manifest.read_text(document.text_sha)
                self._write_chunks(collection, document.name, document.text_sha, text, self.settings)

    def _drop_collection(self, generation: int) -> None:
        self._collections.pop(generation, None)
        with contextlib.suppress(ValueError, chromadb.errors.NotFoundError):
            self.client.delete_collection(f"kb_{self.scenario}_g{generation}")

    # --- read -----------------------------------------------------------------------------------
    def search(self, query: str, settings: RetrievalSettings | None = None) -> list[Source]:
        """The best chunks for query, at or above settings.min_score cosine relevance. With `lexical` on,
        the dense and BM25 rankings are fused (reciprocal rank fusion), chunks naming the query's
        identifiers first (core.knowledge.lexical_index), before the cut to k (or MMR)."""
        settings = settings or self.settings
        if not query.strip():
            return []
        vector = self.embeddings.embed_query(query)
        current = self._current_shas()
        if not current:
            return []
        pool = max(settings.k, settings.fetch_k) if settings.lexical or settings.search_type == "mmr" else settings.k
        dense = self._dense_candidates(vector, current, pool)
        candidates = {hit["id"]: hit for hit in dense}
        order = [hit["id"] for hit in dense]
        lexical_order: list[str] = []
        if settings.lexical:
            lexical = self._lexical.ranked(
                query, self._signature(current), lambda: self._committed_chunks(current), pool
            )
            lexical_order = [c.id for c in lexical]
            self._add_missing(candidates, lexical_order, vector)
            order = fuse([order, lexical_order], [1.0, settings.lexical_weight])
            if named := identifiers(query):  # chunks naming every identifier asked about come first
                order = sorted(order, key=lambda i: not self._lexical.names_all(i, named))
        dense_rank = {i: r for r, i in enumerate((h["id"] for h in dense), 1)}
        lexical_rank = {i: r for r, i in enumerate(lexical_order, 1)}
        hits = [
            candidates[i]
            | {
                "dense_rank": dense_rank.get(i),
                "lexical_rank": lexical_rank.get(i) if settings.lexical else None,
                "fused_rank": fused if settings.lexical else None,
            }
            for fused, i in enumerate(order, 1)
            if i in candidates and candidates[i]["score"] >= settings.min_score
        ]
        if settings.search_type == "mmr" and hits:
            vectors = np.array([hit["vector"] for hit in hits])
            chosen = (
                _diverse_in_order(vectors, settings.mmr_lambda, settings.k)
                if settings.lexical
                else maximal_marginal_relevance(np.array(vector), vectors, settings.mmr_lambda, settings.k)
            )
            hits = [hits[i] for i in chosen]
        return [_source(hit) for hit in hits[: settings.k]]

    def vocabulary(self) -> set[str]:
        """The stemmed words of every committed chunk (core.answers.topic_check asks what the documents mention)."""
        current = self._current_shas()
        return self._lexical.vocabulary(self._signature(current), lambda: self._committed_chunks(current))

    def _signature(self, current: dict[str, str]) -> tuple:
        """What the lexical index is built from: the live collection and every document's committed text."""
        return (self.manifest.generation(), tuple(sorted(current.items())))

    def _dense_candidates(self, vector: list[float], current: dict[str, str], n: int) -> list[dict]:
        """The `n` nearest chunks of committed texts, nearest first, with score and vector."""
        slack = 8  # room for chunks of a version being replaced right now, which are dropped below
        found = self._collection().query(  # asking for more than the store holds returns what there is
            query_embeddings=[vector],
            n_results=n + slack,
            # Only chunks of committed texts compete: a long document being written now (by this process
            # or another) or left by a crash would otherwise fill every place and leave no answer.
            where={"text_sha": {"$in": sorted(set(current.values()))}},
            include=["documents", "metadatas", "distances", "embeddings"],
        )
        hits = [
            {
                "id": chunk_id_,
                "name": meta["source"],
                "text": text,
                "chunk": meta["chunk"],
                "score": round(1.0 - float(distance), 4),
                "vector": embedding,
            }
            for chunk_id_, text, meta, distance, embedding in zip(
                found["ids"][0],
                found["documents"][0],
                found["metadatas"][0],
                found["distances"][0],
                found["embeddings"][0],
                strict=True,
            )
            if current.get(meta["source"]) == meta["text_sha"]
        ]
        return hits[:n]

    def _committed_chunks(self, current: dict[str, str]) -> list[Chunk]:
        """Every chunk of a committed text: what the lexical index is built from."""
        found = self._collection().get(
            where={"text_sha": {"$in": sorted(set(current.values()))}}, include=["documents", "metadatas"]
        )
        return [
            Chunk(chunk_id_, meta["source"], text, meta["chunk"])
            for chunk_id_, text, meta in zip(found["ids"], found["documents"], found["metadatas"], strict=True)
            if current.get(meta["source"]) == meta["text_sha"]
        ]

    def _add_missing(self, candidates: dict[str, dict], ids: list[str], vector: list[float]) -> None:
        """Adds the chunks only the lexical ranking found, with their cosine relevance to the query."""
        missing = [i for i in ids if i not in candidates]
        if not missing:
            return
        found = self._collection().get(ids=missing, include=["documents", "metadatas", "embeddings"])
        query = np.asarray(vector, dtype=np.float64)
        for chunk_id_, text, meta, embedding in zip(
            found["ids"], found["documents"], found["metadatas"], found["embeddings"], strict=True
        ):
            chunk_vector = np.asarray(embedding, dtype=np.float64)
            cosine = float(query @ chunk_vector / (np.linalg.norm(query) * np.linalg.norm(chunk_vector) or 1.0))
            candidates[chunk_id_] = {
                "id": chunk_id_,
                "name": meta["source"],
                "text": text,
                "chunk": meta["chunk"],
                "score": round(cosine, 4),
                "vector": embedding,
            }

    def documents(self) -> list[DocumentInfo]:
        return self.manifest.documents()

    def document_text(self, name: str) -> str:
        document = self.manifest.document(name)
        if document is None or document.text_sha is None:
            raise KeyError(f"no document named {name!r} in {self.scenario}")
        return self.manifest.read_text(document.text_sha)

    def chunks_of(self, name: str) -> list[str]:
        found = self._collection().get(where={"source": name}, include=["documents", "metadatas"])
        current = self._current_shas().get(name)
        pairs = [
            (m["chunk"], d)
            for d, m in zip(found["documents"], found["metadatas"], strict=True)
            if m["text_sha"] == current
        ]
        return [text for _, text in sorted(pairs)]

    def chunk_count(self) -> int:
        return sum(d.chunks for d in self.manifest.documents())

    def stored_chunk_count(self) -> int:
        """Every chunk the live Chroma collection holds, committed or not. Equal to chunk_count() except
        while a write is in flight, or after one was killed (its leftovers are never searched)."""
        return self._collection().count()

    def _current_shas(self) -> dict[str, str]:
        return self.manifest.current_shas()


def _diverse_in_order(vectors: np.ndarray, mmr_lambda: float, k: int) -> list[int]:
    """MMR over a fused ranking: relevance is a chunk's place in it (first = 1, last = 0), as the two
    rankings have no common score; redundancy is the cosine similarity to the chunks already picked."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    relevance = 1.0 - np.arange(len(unit)) / max(len(unit) - 1, 1)
    chosen: list[int] = []
    while len(chosen) < min(k, len(unit)):
        redundancy = (unit @ unit[chosen].T).max(axis=1) if chosen else np.zeros(len(unit))
        value = mmr_lambda * relevance - (1 - mmr_lambda) * redundancy
        value[chosen] = -np.inf
        chosen.append(int(np.argmax(value)))
    return chosen


def _source(hit: dict) -> Source:
    return Source(
        hit["name"], hit["text"], hit["score"], hit["chunk"], hit["dense_rank"], hit["lexical_rank"], hit["fused_rank"]
    )
