"""The knowledge base page's parts: documents (upload, list, delete, re-index), the retrieval
playground, the freshness test and new scenarios."""

import time

import pandas as pd
import streamlit as st

from core.answers.compare import Column
from core.common.scenario import Scenario, ScenarioError
from core.common.vocabulary import ADAPTER_MODES, MODE_LABELS, MODES
from core.knowledge.freshness import (
    apply_edit,
    describe_terms,
    new_fact_terms,
    open_edits,
    sentences,
    states_fact,
    undo_edit,
)
from core.knowledge.knowledge_base import KnowledgeBaseBusy
from core.knowledge.loaders import SUPPORTED_SUFFIXES, UnreadableDocument
from core.knowledge.manifest import RetrievalSettings
from core.text.safe_text import escape_markdown
from ui.access import admin_note, is_admin
from ui.compare import stream_into
from ui.resources import get_lab
from ui.sidebar import MODE_ICONS

UPLOAD_TYPES = [suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES]
ADD_SENTENCE = "(add a new sentence at the end)"


# --- documents ---------------------------------------------------------------------------------
def render_documents(scenario: Scenario) -> None:
    knowledge_base = get_lab().knowledge_base(scenario)
    admin = is_admin()
    if admin:
        render_upload(scenario)
    else:
        admin_note("add, replace, delete or re-index documents")
    documents = knowledge_base.documents()
    if not documents:
        more = " Upload documents above; RAG and hybrid answer from them." if admin else ""
        st.info(f"This knowledge base is empty.{more}")
        return
    table = pd.DataFrame(
        {
            "Document": [d.name for d in documents],
            "Chunks": [d.chunks for d in documents],
            "Characters": [d.chars for d in documents],
            "From": ["scenario docs/" if d.origin == "scenario" else "upload" for d in documents],
            "Updated": [pd.Timestamp(d.updated_at, unit="s", tz="UTC").tz_convert(None) for d in documents],
            "Notes": ["; ".join(d.notes) for d in documents],
        }
    )
    st.markdown(f"**Documents** · select rows to inspect{' or delete' if admin else ''} them")
    picked = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        key=f"kb_table:{scenario.name}",
        column_config={"Updated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )
    chosen = [documents[row].name for row in picked.selection.rows]
    if chosen:
        render_selected(scenario, chosen)
    if admin:
        render_reindex(scenario)


def render_upload(scenario: Scenario) -> None:
    lab = get_lab()
    counter_key = f"kb_uploads:{scenario.name}"
    files = st.file_uploader(
        f"Add documents ({', '.join(UPLOAD_TYPES)}; up to {lab.settings.max_upload_mb} MB each)",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key=f"kb_uploader:{scenario.name}:{st.session_state.get(counter_key, 0)}",
    )
    for message in st.session_state.pop(f"kb_upload_report:{scenario.name}", []):
        getattr(st, message[0])(message[1], icon=message[2])
    if not files or not st.button("Add to knowledge base", type="primary", icon=":material/upload:"):
        return
    report = []
    with st.status(f"Adding {len(files)} document(s)…", expanded=True) as status:
        for file in files:
            bar = st.progress(0.0, text=f"Parsing {file.name}…")

            def embedded(done: int, total: int, bar=bar, file=file) -> None:
                bar.progress(done / total, text=f"Embedding {file.name}: {done}/{total} chunks")

            try:
                name, chunks, notes = lab.upload_document(scenario, file.getvalue(), file.name, embedded)
            except (UnreadableDocument, KnowledgeBaseBusy) as error:
                report.append(("error", f"Not added — {error}. The knowledge base is unchanged.", ":material/error:"))
            else:
                said = f"**{escape_markdown(name)}**: " + (f"{chunks} chunks added" if chunks else "already up to date")
                if notes:
                    report.append(("warning", f"{said} — {escape_markdown('; '.join(notes))}", ":material/warning:"))
                else:
                    report.append(("success", said, ":material/check_circle:"))
            bar.empty()
        failed = sum(kind == "error" for kind, _, _ in report)
        status.update(
            label=f"Added {len(files) - failed} of {len(files)} document(s)", state="error" if failed else "complete"
        )
    st.session_state[f"kb_upload_report:{scenario.name}"] = report
    st.session_state[counter_key] = st.session_state.get(counter_key, 0) + 1  # a fresh, empty uploader
    st.rerun()


def render_selected(scenario: Scenario, names: list[str]) -> None:
    knowledge_base = get_lab().knowledge_base(scenario)
    if len(names) == 1:
        with st.expander(f"Chunks of {names[0]}", icon=":material/segment:"):
            for number, chunk in enumerate(knowledge_base.chunks_of(names[0])):
                st.caption(f"chunk #{number} · {len(chunk)} characters")
                st.text(chunk)
    if not is_admin():
        return
    with st.popover(f"Delete {len(names)} document(s)", icon=":material/delete:"):
        st.write("RAG and hybrid stop using them at once. Scenario documents are not re-imported on restart.")
        if st.button("Delete for good", type="primary", key=f"kb_delete:{scenario.name}"):
            try:
                removed = sum(knowledge_base.delete_document(name) for name in names)
            except KnowledgeBaseBusy as error:
                st.error(str(error), icon=":material/lock:")
                return
            st.session_state[f"kb_upload_report:{scenario.name}"] = [
                ("success", f"Deleted {len(names)} document(s) and {removed} chunks.", ":material/delete:")
            ]
            st.rerun()


def render_reindex(scenario: Scenario) -> None:
    knowledge_base = get_lab().knowledge_base(scenario)
    current = knowledge_base.settings
    with st.expander("Re-index with another chunk size", icon=":material/refresh:"):
        left, right = st.columns(2)
        size = left.number_input("Chunk size (characters)", 100, 8000, current.chunk_size, step=50)
        overlap = right.number_input("Overlap (characters)", 0, 2000, current.chunk_overlap, step=10)
        if overlap >= size:
            st.warning("The overlap must be smaller than the chunk size.")
            return
        unchanged = (size, overlap) == (current.chunk_size, current.chunk_overlap)
        before = knowledge_base.chunk_count()
        after = before if unchanged else knowledge_base.count_chunks(size, overlap)  # splits every text
        st.caption(
            f"Now **{before}** chunks (size {current.chunk_size}, overlap {current.chunk_overlap}) → **{after}** chunks."
        )
        if st.button("Re-index", icon=":material/refresh:", disabled=unchanged):
            try:
                with st.spinner("Re-indexing every document…"):
                    report = knowledge_base.reindex(int(size), int(overlap))
            except KnowledgeBaseBusy as error:
                st.error(str(error), icon=":material/lock:")
                return
            st.session_state[f"kb_upload_report:{scenario.name}"] = [
                (
                    "success",
                    f"Re-indexed: {report.chunks_before} → {report.chunks_after} chunks in {report.seconds:.1f} s.",
                    ":material/refresh:",
                )
            ]
            st.rerun()


# --- retrieval playground ----------------------------------------------------------------------
def render_playground(scenario: Scenario) -> None:
    knowledge_base = get_lab().knowledge_base(scenario)
    saved = knowledge_base.settings
    left, right = st.columns([1, 2], gap="large")
    with left:
        st.markdown("**Retrieval settings**")
        search_type = st.radio(
            "Search",
            ["similarity", "mmr"],
            index=["similarity", "mmr"].index(saved.search_type),
            format_func={"similarity": "Similarity", "mmr": "MMR (relevant and diverse)"}.get,
            horizontal=True,
        )
        k = st.slider("Chunks (k)", 1, 10, saved.k)
        min_score = st.slider(
            "Minimum score",
            0.0,
            0.9,
            float(saved.min_score),
            0.05,
            help="Chunks below this cosine relevance are dropped. When none is left, RAG and hybrid say they "
            "cannot answer from the knowledge base instead of guessing.",
        )
        mmr_lambda = saved.mmr_lambda
        if search_type == "mmr":
            mmr_lambda = st.slider(
                "Relevance vs diversity (λ)", 0.0, 1.0, saved.mmr_lambda, 0.1, help="1 = relevance only."
            )
        lexical = st.toggle(
            "Keyword search (BM25) too",
            saved.lexical,
            help="Ranks chunks by the question's exact words as well as by meaning, and merges the two rankings "
            "(reciprocal rank fusion). A question naming an identifier (an error code, SKU, clause number) gets "
            "the chunks that contain it first.",
        )
        lexical_weight = saved.lexical_weight
        if lexical:
            lexical_weight = st.slider(
                "Keyword ranking's weight",
                0.0,
                3.0,
                float(saved.lexical_weight),
                0.25,
                help="1 = as much as the meaning ranking; 0 = only the identifier rule.",
            )
        chosen = RetrievalSettings.from_dict(
            {
                **saved.to_dict(),
                "search_type": search_type,
                "k": k,
                "min_score": min_score,
                "mmr_lambda": mmr_lambda,
                "lexical": lexical,
                "lexical_weight": lexical_weight,
            }
        )
        if chosen != saved:
            st.caption("Not saved yet: the playground uses these; RAG and hybrid still use the saved ones.")
            if not is_admin():
                admin_note("save retrieval settings for RAG and hybrid")
            elif st.button("Use for RAG and hybrid", type="primary", icon=":material/save:"):
                knowledge_base.save_search_settings(chosen)
                st.toast("Saved: RAG and hybrid now retrieve with these settings.", icon=":material/check:")
                st.rerun()
        else:
            st.caption(":material/check: These are the settings RAG and hybrid use.")
    with right:
        query = st.text_input("Query", placeholder="e.g. How long do I have to return a bike?", key="kb_query")
        if not query.strip():
            st.caption("Type a question to see exactly which chunks RAG would put in the prompt.")
            return
        started = time.perf_counter()
        hits = knowledge_base.search(query, chosen)
        st.caption(
            f"{len(hits)} chunk(s) in {1000 * (time.perf_counter() - started):.0f} ms (query embedding included)"
        )
        if not hits:
            st.warning(
                f"No chunk scores {chosen.min_score:.2f} or more. RAG and hybrid would say they cannot answer "
                "from the knowledge base.",
                icon=":material/block:",
            )
        for number, hit in enumerate(hits, 1):
            with st.container(border=True):
                st.markdown(
                    f"**[{number}] {escape_markdown(hit.name)}** · chunk #{hit.chunk} · score **{hit.score:.3f}**"
                    + (f" · {rank_line(hit)}" if hit.fused_rank else "")
                )
                st.progress(max(0.0, min(1.0, hit.score)))
                st.text(hit.text)


def rank_line(hit) -> str:
    """Why a chunk came where it did: its place by meaning, by keywords, and merged."""
    return f"meaning #{hit.dense_rank or '–'} · keywords #{hit.lexical_rank or '–'} · merged #{hit.fused_rank}"


# --- freshness test -----------------------------------------------------------------------------
def render_freshness(scenario: Scenario) -> None:
    lab = get_lab()
    knowledge_base = lab.knowledge_base(scenario)
    st.caption(
        "Change one fact in a document, re-index it, and ask all four modes. RAG and hybrid read the "
        "new text at once; the fine-tuned model only knows what it was trained on."
    )
    admin = is_admin()
    for edit in open_edits(knowledge_base)[:3]:
        with st.container(border=True):
            st.markdown(
                f":material/edit_note: **{escape_markdown(edit.name)}** was edited: "
                f"~~{escape_markdown(edit.old_sentence) or '(nothing)'}~~ → {escape_markdown(edit.new_sentence)}"
            )
            if admin and st.button(
                "Undo: restore the original document", key=f"undo:{edit.id}", icon=":material/undo:"
            ):
                try:
                    undo_edit(knowledge_base, edit.id)
                except KnowledgeBaseBusy as error:
                    st.error(str(error), icon=":material/lock:")
                    return
                st.session_state.pop(f"fresh_result:{scenario.name}", None)
                st.toast(f"{edit.name} restored and re-indexed.", icon=":material/undo:")
                st.rerun()
    if not admin:
        admin_note("edit documents for the freshness test")
        return
    result = st.session_state.get(f"fresh_result:{scenario.name}")
    if result:
        render_freshness_result(result)
        st.divider()
    documents = [d.name for d in knowledge_base.documents()]
    if not documents:
        st.info("Add a document first.")
        return
    name = st.selectbox("1. Document", documents, key=f"fresh_doc:{scenario.name}")
    options = [ADD_SENTENCE, *sentences(knowledge_base.document_text(name))]
    old = st.selectbox(
        "2. Sentence to change (those with checkable facts first)",
        options,
        index=1 if len(options) > 1 else 0,
        key=f"fresh_sentence:{scenario.name}:{name}",
    )
    old = "" if old == ADD_SENTENCE else old
    new = st.text_area("3. New sentence", value=old, key=f"fresh_new:{scenario.name}:{name}:{old}", height=90)
    question = st.text_input(
        "4. A question about it",
        key=f"fresh_question:{scenario.name}",
        placeholder="e.g. How many days do I have to return a bike?",
    )
    terms = new_fact_terms(old, new)
    if new.strip() and new.strip() != old:
        st.caption(
            f"An answer picks up the edit if it states: **{escape_markdown(describe_terms(terms, new)) or '—'}**"
        )
    ready = bool(new.strip() and new.strip() != old and question.strip())
    if st.button(
        "Apply the edit, re-index and ask the four modes", type="primary", disabled=not ready, icon=":material/bolt:"
    ):
        try:
            edit = apply_edit(knowledge_base, name, old, new)
        except (ValueError, KnowledgeBaseBusy) as error:
            st.error(str(error))
            return
        run_freshness_question(scenario, edit, question, terms)


def run_freshness_question(scenario: Scenario, edit, question: str, terms: list[str]) -> None:
    lab = get_lab()
    adapter = lab.active_adapter(scenario)
    modes = [m for m in MODES if adapter or m not in ADAPTER_MODES]
    columns = [Column(mode) for mode in modes]
    boxes = {}
    for index, box in enumerate(st.columns(len(columns), border=True)):
        with box:
            st.markdown(f"**{MODE_ICONS[modes[index]]} {MODE_LABELS[modes[index]]}**")
            boxes[index] = st.empty()
    stream = lab.compare(scenario, columns, question)
    stream_into(boxes, stream)
    st.session_state[f"fresh_result:{scenario.name}"] = {
        "question": question,
        "terms": terms,
        "edit": edit,
        "answers": stream.answers,
        "adapter": adapter,
    }
    st.rerun()


def render_freshness_result(result: dict) -> None:
    edit, adapter = result["edit"], result["adapter"]
    trained = adapter.metadata.get("duration_s") if adapter else None
    left, right = st.columns(2)
    left.metric("RAG learned it in", f"{edit.reindex_s:.2f} s", help="Measured: re-indexing the edited document.")
    if trained:
        right.metric(
            "Fine-tuning learned its facts in",
            f"{trained / 60:.1f} min",
            help="The active adapter's training time (from its metadata). It was trained before this edit: "
            "it learns the new fact only by training again on new data.",
        )
    else:
        right.caption("No adapter yet: fine-tuned and hybrid were left out.")
    st.markdown(f"**Q:** {escape_markdown(result['question'])}")
    for box, answer in zip(st.columns(len(result["answers"]), border=True), result["answers"], strict=True):
        with box:
            st.markdown(f"**{MODE_ICONS[answer.mode]} {MODE_LABELS[answer.mode]}**")
            if states_fact(answer.text, result["terms"]):
                st.success("States the new fact", icon=":material/check_circle:")
            else:
                st.error("Does not state it", icon=":material/cancel:")
            st.markdown(escape_markdown(answer.text))


# --- new scenario -------------------------------------------------------------------------------
def render_new_scenario() -> None:
    if not is_admin():
        return  # a new scenario is empty, and only admins can add documents to it
    with (
        st.popover("New scenario", icon=":material/add:"),
        st.form("new_scenario", clear_on_submit=True, border=False),
    ):
        st.text_input("Title", key="new_scenario_title", max_chars=80, placeholder="Acme HR policies")
        st.text_area("Description", key="new_scenario_description", max_chars=2000)
        st.form_submit_button("Create", type="primary", on_click=_create_scenario)
    if "new_scenario_message" in st.session_state:
        kind, text = st.session_state.pop("new_scenario_message")
        getattr(st, kind)(text)


def _create_scenario() -> None:
    """A form callback: runs before the page, so it may switch the sidebar's scenario picker."""
    if not is_admin():
        return
    try:
        scenario = get_lab().create_scenario(
            st.session_state.get("new_scenario_title", ""), st.session_state.get("new_scenario_description", "")
        )
    except ScenarioError as error:
        st.session_state["new_scenario_message"] = ("error", str(error))
        return
    st.session_state["scenario"] = scenario.name
    st.session_state["new_scenario_message"] = (
        "success",
        f"Created **{escape_markdown(scenario.title)}**. Upload its documents below. Fine-tuned and hybrid "
        f"need a train.jsonl in {escape_markdown(str(scenario.path))} to train an adapter from.",
    )
