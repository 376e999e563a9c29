"""One Chroma collection per scenario: idempotent ingest with content-derived chunk ids, and scored search."""

import hashlib
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import chromadb
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.loaders import SUPPORTED_SUFFIXES, UnreadableDocument, load_file

_clients: dict[str, chromadb.ClientAPI] = {}
_clients_lock = threading.Lock()


def chroma_client(store_dir: Path) -> chromadb.ClientAPI:
    """One persistent client per folder and process (Chroma expects exactly one)."""
    key = str(Path(store_dir).resolve())
    with _clients_lock:
        if key not in _clients:
            Path(key).mkdir(parents=True, exist_ok=True)
            _clients[key] = chromadb.PersistentClient(
                path=key, settings=chromadb.config.Settings(anonymized_telemetry=False)
            )
        return _clients[key]


@dataclass(frozen=True)
class Source:
    """A retrieved chunk and its cosine relevance (1.0 = same meaning)."""

    name: str
    text: str
    score: float
    chunk: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)  # documents new or changed
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # document -> reason
    chunks_added: int = 0
    seconds: float = 0.0


def chunk_id(source: str, text: str, occurrence: int) -> str:
    """Stable id from content: the same chunk of the same document always gets the same id."""
    return hashlib.sha256(f"{source}\0{occurrence}\0{text}".encode()).hexdigest()[:32]


class KnowledgeBase:
    def __init__(self, store_dir: Path, scenario: str, embeddings: Embeddings, chunk_size: int, chunk_overlap: int):
        self.scenario = scenario
        self.splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        self.store = Chroma(
            collection_name=f"kb_{scenario}",
            embedding_function=embeddings,
            client=chroma_client(store_dir),
            collection_metadata={"hnsw:space": "cosine"},
        )
        self._write_lock = threading.Lock()

    # --- ingest -----------------------------------------------------------------------------
    def ingest_folder(self, folder: Path, progress=None) -> IngestReport:
        """Ingests every supported file under folder; files already indexed unchanged are skipped."""
        started = time.perf_counter()
        report = IngestReport()
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        for done, path in enumerate(files, 1):
            name = path.relative_to(folder).as_posix()
            try:
                added = self.ingest_file(path, name)
            except UnreadableDocument as error:
                report.failed[name] = str(error)
            else:
                (report.added if added else report.unchanged).append(name)
                report.chunks_added += added
            if progress:
                progress(done, len(files), name)
        report.seconds = time.perf_counter() - started
        return report

    def ingest_file(self, path: Path, name: str) -> int:
        """Replaces the chunks of document `name` with those of `path`; returns how many were added (0: unchanged)."""
        documents = load_file(path)
        chunks = self.splitter.split_documents(documents)
        seen: Counter = Counter()
        ids, texts, metadatas = [], [], []
        ingested_at = time.time()
        for index, chunk in enumerate(chunks):
            text = chunk.page_content
            seen[text] += 1
            ids.append(chunk_id(name, text, seen[text]))
            texts.append(text)
            metadatas.append({"source": name, "chunk": index, "ingested_at": ingested_at})
        with self._write_lock:
            existing = set(self.store.get(where={"source": name}, include=[])["ids"])
            if existing == set(ids):
                return 0
            # All of the document's new chunks go in one call before the old ones leave, so a
            # failure leaves the previous version whole.
            self.store.add_texts(texts=texts, metadatas=metadatas, ids=ids)
            stale = list(existing - set(ids))
            if stale:
                self.store.delete(ids=stale)
        return len(ids)

    def delete_document(self, name: str) -> int:
        with self._write_lock:
            ids = self.store.get(where={"source": name}, include=[])["ids"]
            if ids:
                self.store.delete(ids=ids)
        return len(ids)

    # --- read -------------------------------------------------------------------------------
    def search(self, query: str, k: int) -> list[Source]:
        if not query.strip():
            return []
        hits = self.store.similarity_search_with_relevance_scores(query, k=k)
        return [
            Source(
                name=doc.metadata["source"],
                text=doc.page_content,
                score=round(float(score), 4),
                chunk=doc.metadata["chunk"],
            )
            for doc, score in hits
        ]

    def documents(self) -> dict[str, int]:
        """Document name -> chunk count."""
        metadatas = self.store.get(include=["metadatas"])["metadatas"]
        return dict(sorted(Counter(m["source"] for m in metadatas).items()))

    def chunk_count(self) -> int:
        return self.store._collection.count()
