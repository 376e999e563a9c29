"""The frame every page shares: page config, the login gate, and a sidebar with links, scenario picker,
status and the signed-in visitor."""

import streamlit as st

from core.common.vocabulary import MODE_LABELS, MODES
from core.lab import LabStatus
from core.training.adapters import friendly_name
from core.training.estimate import time_left_words
from ui.access import render_account, require_access
from ui.resources import current_scenario, get_lab

MODE_ICONS = {
    "base": ":material/deployed_code:",
    "rag": ":material/menu_book:",
    "finetuned": ":material/tune:",
    "hybrid": ":material/join:",
}

# Pages beyond the four modes: (script, title, icon). The router reads this list too.
EXTRA_PAGES = [
    ("pages/compare.py", "Compare", ":material/view_column:"),
    ("pages/leaderboard.py", "Leaderboard", ":material/leaderboard:"),
    ("pages/knowledge_base.py", "Knowledge base", ":material/library_books:"),
    ("pages/finetuning.py", "Fine-tuning", ":material/model_training:"),
    ("pages/evaluation.py", "Evaluation", ":material/science:"),
]


def configure_page() -> None:
    st.set_page_config(page_title="RAG vs Fine-Tuning Lab", page_icon="🧪", layout="wide")


def page_frame() -> None:
    configure_page()
    require_access()  # before anything loads the Lab: a page served directly skips the router's gate
    render_sidebar()


def render_sidebar() -> None:
    lab = get_lab()
    scenarios = {s.name: s for s in lab.scenarios()}
    with st.sidebar:
        st.page_link("pages/home.py", label="Overview", icon=":material/home:")
        for mode in MODES:
            st.page_link(f"pages/{mode}.py", label=MODE_LABELS[mode], icon=MODE_ICONS[mode])
        for path, label, icon in EXTRA_PAGES:
            st.page_link(path, label=label, icon=icon)
        st.divider()
    # In the main area: on the first visit after a start, the indexing spinner shows where the page will be.
    current = current_scenario()
    with st.sidebar:
        # No widget key: with st.navigation each page has its own copy of this widget, and a keyed
        # one would start at its first option on every page switch. session_state["scenario"] rules.
        names = list(scenarios)
        picked = st.selectbox(
            "Scenario", options=names, index=names.index(current.name), format_func=lambda n: scenarios[n].title
        )
        if picked != current.name:
            st.session_state["scenario"] = picked
            st.rerun()
        status = lab.status(current)
        st.caption(f"**Model** {status.model}", help=f"{status.device} · {status.dtype or 'remote'}")
        st.caption(
            f"**Knowledge base** {status.documents} documents",
            help=f"{status.chunks} chunks: the passages retrieval searches.",
        )
        st.caption(f"**Fine-tuned version** {adapter_summary(status)}", help=status.adapter or None)
        render_account()


def adapter_summary(status: LabStatus) -> str:
    """The scenario's fine-tuned version in words: when it was trained, or how long its training has left
    (the estimate the fine-tuning page shows, core.training.estimate)."""
    if status.adapter:
        return friendly_name(status.adapter)
    job = status.job
    if job and job.status == "queued":
        return "training, waiting for its turn"
    if job and job.active:
        return f"training, {time_left_words(job.eta_s) if job.total_steps else 'starting'}"
    if job and job.status in ("failed", "cancelled"):
        return f"none — last training {job.status}"
    return "none yet"
