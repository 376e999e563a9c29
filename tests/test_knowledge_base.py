"""Knowledge base: real Chroma, real embeddings, real SQLite manifest; ingest, replace, delete, re-index,
search settings, restart in a new process."""

import json
import shutil
import subprocess
import sys

import pytest

from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.loaders import ParsedText
from core.knowledge.manifest import RetrievalSettings
from tests.conftest import ROOT, SAMPLE

pytestmark = pytest.mark.model


@pytest.fixture
def kb(lab, tmp_path):
    return KnowledgeBase(
        tmp_path, "kbtest", lab.embeddings, RetrievalSettings(chunk_size=300, chunk_overlap=30, min_score=0.0)
    )


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(SAMPLE / "docs", folder)
    return folder


@pytest.fixture(scope="module")
def synced(lab, tmp_path_factory):
    """The sample's documents, synced once, for the tests that only search them."""
    folder = tmp_path_factory.mktemp("synced")
    shutil.copytree(SAMPLE / "docs", folder / "docs")
    knowledge_base = KnowledgeBase(
        folder, "kbtest", lab.embeddings, RetrievalSettings(chunk_size=300, chunk_overlap=30, min_score=0.0)
    )
    knowledge_base.sync_folder(folder / "docs")
    return knowledge_base


def counts(kb) -> dict[str, int]:
    return {d.name: d.chunks for d in kb.documents()}


def test_sync_is_idempotent_with_counts_matching_chroma(kb, docs):
    first = kb.sync_folder(docs)
    assert len(first.added) == len(list(docs.iterdir())) and not first.failed
    second = kb.sync_folder(docs)
    assert second.added == [] and len(second.unchanged) == len(first.added)
    assert kb.chunk_count() == first.chunks_added == kb.stored_chunk_count()
    assert all(len(kb.chunks_of(name)) == n for name, n in counts(kb).items())


def test_a_changed_file_replaces_only_its_own_chunks(kb, docs):
    kb.sync_folder(docs)
    before = counts(kb)
    (docs / "returns_and_refunds.md").write_text(
        "# Returns\n\nLumen Bikes accepts returns within 99 days of delivery.\n"
    )
    report = kb.sync_folder(docs)
    assert report.added == ["returns_and_refunds.md"]
    after = counts(kb)
    assert after.pop("returns_and_refunds.md") == 1 and before.pop("returns_and_refunds.md") > 1
    assert after == before
    hit = kb.search("How long is the return window?", RetrievalSettings(k=1, min_score=0.0))[0]
    assert "99 days" in hit.text and hit.name == "returns_and_refunds.md"


def test_search_ranks_the_right_document_first(synced):
    question = "What is the phone number for support?"
    dense = synced.search(question, RetrievalSettings(k=3, min_score=0.0, lexical=False))
    assert len(dense) == 3 and dense[0].name == "contact_support.html"
    assert dense[0].score >= dense[1].score >= dense[2].score
    hybrid = synced.search(question, RetrievalSettings(k=3, min_score=0.0))  # in fused order, not by score
    assert hybrid[0].name == "contact_support.html" and [h.fused_rank for h in hybrid] == sorted(
        h.fused_rank for h in hybrid
    )
    assert synced.search("   ") == []


def test_a_min_score_leaves_out_every_weaker_chunk(synced):
    assert synced.search("What is the capital of France?", RetrievalSettings(k=3, min_score=0.3)) == []


def test_mmr_diversifies_the_chunks(synced):
    question = "How much does shipping cost?"
    plain = synced.search(question, RetrievalSettings(k=4, min_score=0.0))
    mmr = synced.search(question, RetrievalSettings(k=4, min_score=0.0, search_type="mmr", mmr_lambda=0.3))
    assert len(mmr) == 4 and mmr[0] == plain[0]  # the best chunk is always picked first
    assert len({h.name for h in mmr}) >= len({h.name for h in plain})
    assert [h.text for h in mmr] != [h.text for h in plain]


def test_delete_removes_a_document_with_its_chunks(kb, docs):
    kb.sync_folder(docs)
    total = kb.chunk_count()
    removed = kb.delete_document("warranty.md")
    assert removed > 0 and "warranty.md" not in counts(kb)
    assert kb.stored_chunk_count() == total - removed
    assert all(
        h.name != "warranty.md" for h in kb.search("frame warranty years", RetrievalSettings(k=10, min_score=0.0))
    )
    # A deleted scenario document stays deleted when the folder is synced again.
    assert "warranty.md" in kb.sync_folder(docs).unchanged and "warranty.md" not in counts(kb)
    with pytest.raises(KeyError):
        kb.delete_document("warranty.md")


def test_reindex_changes_chunking_in_one_switch(kb, docs):
    kb.sync_folder(docs)
    before = kb.chunk_count()
    report = kb.reindex(chunk_size=150, chunk_overlap=0)
    assert report.chunks_before == before and report.chunks_after == kb.chunk_count() > before
    assert kb.settings.chunk_size == 150 and kb.stored_chunk_count() == report.chunks_after
    assert all(len(c) <= 150 for c in kb.chunks_of("warranty.md"))
    assert (
        kb.search("How many years is the frame covered?", RetrievalSettings(k=1, min_score=0.0))[0].name
        == "warranty.md"
    )
    with pytest.raises(ValueError, match="re-index"):
        kb.save_search_settings(RetrievalSettings(chunk_size=900, chunk_overlap=0))


@pytest.mark.process
def test_state_survives_a_restart_in_a_new_process(lab, sample, settings):
    knowledge_base = lab.knowledge_base(sample)
    lab.upload_document(sample, b"Lumen Bikes rents e-bikes for $9 per hour at the Portland store.", "rentals.md")
    expected = counts(knowledge_base)
    script = (
        "import json; from core.lab import Lab; from core.common.settings import get_settings; from core.common.scenario import load_scenario\n"
        f"lab = Lab(get_settings()); kb = lab.knowledge_base(load_scenario({str(SAMPLE)!r}))\n"
        "hit = kb.search('How much does it cost to rent a bike?')[0]\n"
        "print(json.dumps({'counts': {d.name: d.chunks for d in kb.documents()}, 'chroma': kb.stored_chunk_count(), 'hit': hit.name}))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["counts"] == expected and seen["chroma"] == sum(expected.values()) and seen["hit"] == "rentals.md"
    knowledge_base.delete_document("rentals.md")


def test_an_upload_of_the_same_text_is_idempotent(kb):
    assert kb.add_text("a.md", ParsedText("Lumen Bikes opened a store in Lisbon in 2024. " * 10)) > 0
    assert kb.add_text("a.md", ParsedText("Lumen Bikes opened a store in Lisbon in 2024. " * 10)) == 0
    assert counts(kb) == {"a.md": kb.stored_chunk_count()}


def test_a_question_naming_an_identifier_gets_the_chunk_that_names_it_first(kb):
    kb.add_text("quota.md", ParsedText("Code RC-4031 is shown when the workspace has used all of its storage."))
    kb.add_text(
        "sync.md",
        ParsedText(
            "What does a sync error mean? A sync error such as RC-4032 means the desktop app lost its "
            "connection to the server while syncing, and it will retry."
        ),
    )
    kb.add_text("login.md", ParsedText("Error RC-4013 means your sign-in session expired. Sign in again."))
    question = "What does sync error RC-4031 mean?"
    dense = kb.search(question, RetrievalSettings(k=3, min_score=0.0, lexical=False))
    assert dense[0].name == "sync.md" and dense[0].fused_rank is None  # closer in meaning, wrong code
    hybrid = kb.search(question, RetrievalSettings(k=3, min_score=0.0))
    assert hybrid[0].name == "quota.md" and hybrid[0].dense_rank > 1 and hybrid[0].lexical_rank is not None
    assert [h.fused_rank for h in hybrid] == sorted(h.fused_rank for h in hybrid)
    # Every chunk keeps its cosine score, which the min-score gate reads.
    assert all(h.score == d.score for h in hybrid for d in dense if d.name == h.name)


def test_the_lexical_index_follows_every_change(kb):
    kb.add_text("a.md", ParsedText("The Zephyr-88 charger ships with the Atlas."))
    assert kb.search("Zephyr-88", RetrievalSettings(k=1, min_score=-1.0))[0].name == "a.md"
    kb.add_text("a.md", ParsedText("The Boreas-12 charger ships with the Atlas."))  # replaced
    kb.add_text("b.md", ParsedText("Zephyr-88 is the old charger, no longer sold."))
    hits = kb.search("Zephyr-88", RetrievalSettings(k=1, min_score=-1.0))
    assert hits[0].name == "b.md" and hits[0].lexical_rank == 1
    kb.delete_document("b.md")
    assert all(h.name != "b.md" for h in kb.search("Zephyr-88", RetrievalSettings(k=5, min_score=-1.0)))
    kb.reindex(chunk_size=200, chunk_overlap=0)
    assert kb.search("Boreas-12", RetrievalSettings(k=1, min_score=-1.0))[0].lexical_rank == 1
