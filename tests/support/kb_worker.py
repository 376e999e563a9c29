"""A knowledge-base writer in its own process, for the reliability tests: it ingests generated documents
into a data dir, reports each step on stdout as a JSON line, and can pause mid-document (holding the
writer lock, some chunks written, nothing committed) until told to go on.

    python -m tests.support.kb_worker DATA_DIR [--pause-in DOC]

Events: opened (with its pid), batch (chunks of a document written so far), paused, committed, done.
"""

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import chromadb

from core.knowledge.loaders import ParsedText
from core.knowledge.manifest import Manifest, RetrievalSettings

SCENARIO = "crash"
SETTINGS = RetrievalSettings(chunk_size=100, chunk_overlap=0, min_score=0.0)
CITIES = ["Oslo", "Lima", "Kyoto", "Nairobi", "Quebec", "Tbilisi"]
BIG = 3  # the document with more than one write batch (EMBED_BATCH chunks), where a kill leaves strays


def documents() -> list[tuple[str, str]]:
    """Six small documents, one per city; the fourth is long enough to be written in two batches."""
    docs = []
    for number, city in enumerate(CITIES):
        lines = 120 if number == BIG else 6
        text = "\n".join(f"The {city} depot keeps {n + 10} spare batteries for bike model {n}." for n in range(lines))
        docs.append((f"depot_{city.lower()}.md", text))
    return docs


def store_state(data_dir: Path, client) -> dict:
    """Per document, the chunks Chroma holds for its committed text; chunks of no committed text (strays)."""
    manifest = Manifest(data_dir, SCENARIO, SETTINGS)
    current = manifest.current_shas()
    try:
        found = client.get_collection(f"kb_{SCENARIO}_g{manifest.generation()}").get(include=["metadatas"])["metadatas"]
    except chromadb.errors.NotFoundError:  # a fresh store
        found = []
    chroma = Counter(m["source"] for m in found if current.get(m["source"]) == m["text_sha"])
    return {
        "manifest": {d.name: d.chunks for d in manifest.documents()},
        "chroma": dict(chroma),
        "strays": len(found) - sum(chroma.values()),
        "total": len(found),
    }


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--pause-in", type=int, default=-1)
    args = parser.parse_args()

    from core.common.settings import get_settings
    from core.knowledge.knowledge_base import KnowledgeBase, chroma_client
    from core.lab import Lab

    embeddings = Lab(get_settings()).embeddings
    kb = KnowledgeBase(args.data_dir, SCENARIO, embeddings, SETTINGS, chroma_client(args.data_dir / "chroma"))
    emit("opened", pid=os.getpid())
    for number, (name, text) in enumerate(documents()):

        def written(done: int, total: int, number=number) -> None:
            emit("batch", doc=number, written=done, total=total)
            if number == args.pause_in and done < total:
                emit("paused")
                sys.stdin.readline()

        emit("committed", doc=number, chunks=kb.add_text(name, ParsedText(text), progress=written))
    emit("done")


if __name__ == "__main__":
    main()
