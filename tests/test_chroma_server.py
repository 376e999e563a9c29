"""A real Chroma server (`chroma run`) instead of the embedded store: ingest, query, restart, query again."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.knowledge.knowledge_base import ChromaUnavailable, KnowledgeBase, chroma_client
from core.knowledge.manifest import RetrievalSettings
from tests.conftest import SAMPLE
from tests.support.servers import free_port, start_server, stop_server

CHROMA = Path(sys.executable).with_name("chroma")


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    command = [str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    return start_server(command, f"http://127.0.0.1:{port}/api/v2/heartbeat", seconds=30)


@pytest.fixture
def server_store(tmp_path):
    port = free_port()
    server = start_chroma(tmp_path / "chroma-server", port)
    state = {"server": server, "port": port, "path": tmp_path / "chroma-server"}
    yield state
    if state["server"].poll() is None:
        stop_server(state["server"])


@pytest.mark.model
@pytest.mark.process
def test_knowledge_base_on_a_chroma_server_survives_its_restart(lab, tmp_path, server_store):
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE / "docs", docs)
    client = chroma_client(tmp_path / "unused", "127.0.0.1", server_store["port"])
    kb = KnowledgeBase(tmp_path, "served", lab.embeddings, RetrievalSettings(min_score=0.0), client)
    report = kb.sync_folder(docs)
    assert report.added and not report.failed
    assert not (tmp_path / "chroma").exists() and not (tmp_path / "unused").exists()  # nothing embedded
    question = "How many days do I have to return a bike?"
    before = [(s.name, s.chunk) for s in kb.search(question)]
    assert before[0][0] == "returns_and_refunds.md"

    stop_server(server_store["server"])
    server_store["server"] = start_chroma(server_store["path"], server_store["port"])

    # The same client, and a new knowledge base object as a second app process would open it.
    assert [(s.name, s.chunk) for s in kb.search(question)] == before
    reopened = KnowledgeBase(tmp_path, "served", lab.embeddings, RetrievalSettings(min_score=0.0), client)
    assert [(s.name, s.chunk) for s in reopened.search(question)] == before
    assert reopened.chunk_count() == report.chunks_added == reopened.stored_chunk_count()


@pytest.mark.model
@pytest.mark.process
def test_a_data_dir_moved_to_an_empty_server_is_embedded_again(lab, tmp_path, server_store):
    """The manifest says what is indexed; a store that lacks it (a new server) is refilled on open."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE / "docs", docs)
    embedded = KnowledgeBase(tmp_path, "moved", lab.embeddings, RetrievalSettings(min_score=0.0))
    chunks = embedded.sync_folder(docs).chunks_added
    client = chroma_client(tmp_path / "unused", "127.0.0.1", server_store["port"])
    served = KnowledgeBase(tmp_path, "moved", lab.embeddings, RetrievalSettings(min_score=0.0), client)
    assert served.stored_chunk_count() == chunks == served.chunk_count()
    question = "How many days do I have to return a bike?"
    assert [(s.name, s.chunk) for s in served.search(question)] == [
        (s.name, s.chunk) for s in embedded.search(question)
    ]
    assert served.sync_folder(docs).added == []  # and nothing is imported twice


def test_a_server_that_is_down_gets_a_clear_message(tmp_path):
    port = free_port()  # nothing listens here
    with pytest.raises(ChromaUnavailable, match=rf"Chroma server at 127.0.0.1:{port} does not answer"):
        chroma_client(tmp_path, "127.0.0.1", port)
