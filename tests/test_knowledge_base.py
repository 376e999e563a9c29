"""Knowledge base: real Chroma, real embeddings; idempotent ingest, replacement, retrieval, loaders."""

import shutil

import pytest

from core.knowledge_base import KnowledgeBase
from core.loaders import UnreadableDocument, load_file


@pytest.fixture
def kb(lab, tmp_path):
    return KnowledgeBase(tmp_path / "chroma", "kbtest", lab.embeddings, chunk_size=300, chunk_overlap=30)


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree("scenarios/lumen_support/docs", folder)
    return folder


def test_ingest_is_idempotent(kb, docs):
    first = kb.ingest_folder(docs)
    chunks = kb.chunk_count()
    assert len(first.added) == len(list(docs.iterdir())) and not first.failed
    second = kb.ingest_folder(docs)
    assert second.added == [] and len(second.unchanged) == len(first.added)
    assert kb.chunk_count() == chunks == first.chunks_added


def test_changed_document_replaces_its_chunks(kb, docs):
    kb.ingest_folder(docs)
    before = kb.documents()
    path = docs / "returns_and_refunds.md"
    path.write_text("# Returns\n\nLumen Bikes accepts returns within 99 days of delivery.\n")
    report = kb.ingest_folder(docs)
    assert report.added == ["returns_and_refunds.md"]
    after = kb.documents()
    assert after["returns_and_refunds.md"] == 1
    assert {k: v for k, v in after.items() if k != "returns_and_refunds.md"} == {
        k: v for k, v in before.items() if k != "returns_and_refunds.md"
    }
    hit = kb.search("How long is the return window?", k=1)[0]
    assert "99 days" in hit.text and hit.name == "returns_and_refunds.md"


def test_search_finds_the_right_document_with_scores(kb, docs):
    kb.ingest_folder(docs)
    hits = kb.search("What is the phone number for support?", k=3)
    assert len(hits) == 3
    assert hits[0].name == "contact_support.html"
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert kb.search("   ", k=3) == []


def test_delete_document(kb, docs):
    kb.ingest_folder(docs)
    removed = kb.delete_document("warranty.md")
    assert removed > 0 and "warranty.md" not in kb.documents()


def test_loaders_read_html_and_pdf(tmp_path):
    html = tmp_path / "page.html"
    html.write_text("<html><body><h1>Title</h1><p>Lumen &amp; friends</p><script>alert(1)</script></body></html>")
    assert "Lumen & friends" in load_file(html)[0].page_content
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(_tiny_pdf("Lumen PDF text"))
    assert "Lumen PDF text" in load_file(pdf)[0].page_content


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.txt", b"", "no text"),
        ("fake.pdf", b"\x00\x01not a pdf at all", "could not be read"),
        ("x.exe", b"MZ", "unsupported"),
    ],
)
def test_unreadable_files_are_refused_and_change_nothing(kb, docs, tmp_path, name, content, reason):
    kb.ingest_folder(docs)
    before = kb.documents()
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(UnreadableDocument, match=reason):
        kb.ingest_file(bad, name)
    assert kb.documents() == before


def _tiny_pdf(text: str) -> bytes:
    """A minimal one-page PDF with one line of text, written by hand (no PDF library needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out
