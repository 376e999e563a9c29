"""Knowledge base: upload and inspect documents, tune retrieval, and run the freshness test."""

import streamlit as st

from core.text.safe_text import escape_markdown
from ui.knowledge_base import render_documents, render_freshness, render_new_scenario, render_playground
from ui.resources import current_scenario, get_lab
from ui.sidebar import page_frame

page_frame()
scenario = current_scenario()
settings = get_lab().knowledge_base(scenario).settings
title, action = st.columns([4, 1], vertical_alignment="bottom")
title.title(":material/library_books: Knowledge base")
with action:
    render_new_scenario()
st.caption(
    f"Scenario **{escape_markdown(scenario.title)}** · RAG and hybrid retrieve {settings.k} chunk(s) by "
    f"{'MMR' if settings.search_type == 'mmr' else 'similarity'}, minimum score {settings.min_score:.2f} · "
    f"chunks of {settings.chunk_size} characters, overlap {settings.chunk_overlap}."
)
documents, playground, freshness = st.tabs(
    [":material/description: Documents", ":material/search: Retrieval playground", ":material/bolt: Freshness test"]
)
with documents:
    render_documents(scenario)
with playground:
    render_playground(scenario)
with freshness:
    render_freshness(scenario)
