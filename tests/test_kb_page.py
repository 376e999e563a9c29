"""The knowledge base page under AppTest with the real model, embeddings and store: upload through
file_uploader, the playground, the freshness test with Undo, and a new scenario."""

import pytest

from tests.support.apptest import open_page, page_texts

pytestmark = pytest.mark.model

PAGE = "pages/knowledge_base.py"


def test_page_lists_the_documents_with_chunk_counts(sample, lab):
    at = open_page(PAGE)
    table = at.dataframe[0].value
    documents = lab.knowledge_base(sample).documents()
    assert list(table["Document"]) == [d.name for d in documents]
    assert list(table["Chunks"]) == [d.chunks for d in documents] and table["Chunks"].sum() > 0
    assert "retrieve 3 chunk(s) by similarity" in page_texts(at)


@pytest.mark.process
def test_an_upload_through_the_page_keeps_only_the_readable_files(sample, lab):
    knowledge_base = lab.knowledge_base(sample)
    before = {d.name: d.text_sha for d in knowledge_base.documents()}
    at = open_page(PAGE)
    at.file_uploader[0].set_value(
        [
            ("rentals.md", b"# Rentals\n\nLumen Bikes rents e-bikes for $9 per hour.", "text/markdown"),
            ("../evil.pdf", b"MZ this is not a pdf", "application/pdf"),
        ]
    ).run()
    next(b for b in at.button if b.label == "Add to knowledge base").click().run()
    assert not at.exception
    text = page_texts(at)
    assert "rentals.md" in text and "1 chunks added" in text
    assert "evil.pdf: not a readable PDF" in text and "The knowledge base is unchanged" in text
    after = {d.name: d.text_sha for d in knowledge_base.documents()}
    assert set(after) - set(before) == {"rentals.md"} and all(after[n] == s for n, s in before.items())
    assert knowledge_base.search("Can I rent a bike?")[0].name == "rentals.md"
    knowledge_base.delete_document("rentals.md")


def test_the_playground_shows_scored_chunks_down_to_the_min_score(sample):
    at = open_page(PAGE)
    at.text_input(key="kb_query").set_value("What is the support email address?").run()
    assert not at.exception
    headings = [m.value for m in at.markdown if m.value.startswith("**[")]
    assert len(headings) == 3 and "contact" in headings[0] and "score **0." in headings[0]
    at.slider[1].set_value(0.9).run()  # minimum score
    assert "No chunk scores 0.90 or more" in page_texts(at)
    assert "Not saved yet" in page_texts(at)


def test_a_freshness_edit_from_the_page_reaches_rag_until_undone(sample, lab):
    knowledge_base = lab.knowledge_base(sample)
    doc = "shipping_and_delivery.md"
    original = knowledge_base.manifest.document(doc).text_sha
    at = open_page(PAGE)
    at.selectbox(key="fresh_doc:lumen_support").set_value(doc).run()
    sentence_box = at.selectbox(key=f"fresh_sentence:lumen_support:{doc}")
    old = next(o for o in sentence_box.options if o.startswith("Express delivery from Lumen Bikes takes"))
    sentence_box.set_value(old).run()
    new = old.replace("$25", "$39")
    next(t for t in at.text_area if t.label == "3. New sentence").set_value(new).run()
    at.text_input(key="fresh_question:lumen_support").set_value("How much does express delivery cost?").run()
    assert "states: **\\$39**" in page_texts(at)  # Markdown-escaped
    next(b for b in at.button if b.label.startswith("Apply the edit")).click().run()
    assert not at.exception
    assert "costs $39" in knowledge_base.document_text(doc)
    # One verdict per mode column, RAG's first among them after base; the timings compare the two ways to learn.
    verdicts = [e.value for e in at.success] + [e.value for e in at.error]
    answers = at.session_state["fresh_result:lumen_support"]["answers"]
    assert [a.mode for a in answers] == ["base", "rag", "finetuned", "hybrid"] and len(verdicts) == 4
    # Each verdict says whether that answer states $39; RAG's sources hold it at once.
    assert ("States the new fact" in [s.value for s in at.success]) == any("$39" in a.text for a in answers)
    assert any("$39" in source.text for source in answers[1].sources)
    assert [m.label for m in at.metric] == ["RAG learned it in", "Fine-tuning learned its facts in"]
    next(b for b in at.button if b.label.startswith("Undo")).click().run()
    assert not at.exception
    assert knowledge_base.manifest.document(doc).text_sha == original


def test_new_scenario_from_the_page_starts_empty(sample, lab):
    at = open_page(PAGE)
    at.text_input(key="new_scenario_title").set_value("Acme HR policies")
    at.text_area(key="new_scenario_description").set_value("Leave and expenses.")
    next(b for b in at.button if b.label == "Create").click().run()
    assert not at.exception
    assert at.session_state["scenario"] == "acme_hr_policies"
    assert "Created **Acme HR policies**" in page_texts(at) and "This knowledge base is empty" in " ".join(
        i.value for i in at.info
    )
    assert "acme_hr_policies" in [s.name for s in lab.scenarios()]
    # The choice holds across pages, and the sidebar picker switches back.
    at.switch_page("pages/rag.py").run()
    assert at.session_state["scenario"] == "acme_hr_policies" and at.sidebar.selectbox[0].value == "acme_hr_policies"
    at.sidebar.selectbox[0].set_value("lumen_support").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception and at.session_state["scenario"] == "lumen_support"


@pytest.mark.process
def test_document_text_with_images_or_html_is_shown_as_text(sample, lab):
    knowledge_base = lab.knowledge_base(sample)
    hostile = (
        "Roadside help: <script>alert(1)</script> <img src=x onerror=alert(2)> ![pixel](https://evil.example/p.png)"
    )
    lab.upload_document(sample, hostile.encode(), "roadside.md")
    try:
        at = open_page(PAGE)
        at.text_input(key="kb_query").set_value("roadside help").run()
        assert not at.exception
        assert hostile in [t.value for t in at.text]  # st.text: shown literally, never as Markdown or HTML
        assert not any("![" in m.value or "<script" in m.value for m in at.markdown)
    finally:
        knowledge_base.delete_document("roadside.md")
