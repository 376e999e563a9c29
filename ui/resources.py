"""The one Lab per server process, the selected scenario, this browser's chat id, and once-per-process
preparation."""

import streamlit as st

from core.answers.chats import is_chat_id, new_chat_id
from core.answers.remote_model import BackendNotConfigured
from core.common.scenario import Scenario
from core.common.settings import get_settings
from core.engine.model_store import MissingModelError
from core.knowledge.knowledge_base import ChromaUnavailable
from core.lab import Lab


@st.cache_resource(show_spinner="Loading the model and the embeddings (once after each start)…")
def _load_lab() -> Lab:
    lab = Lab(get_settings())
    lab.warm_up()
    return lab


def get_lab() -> Lab:
    try:
        return _load_lab()
    except MissingModelError as error:
        st.error(str(error))
        st.stop()


@st.cache_resource(show_spinner="Indexing the knowledge base (once after each start; new documents only)…")
def prepare_scenario(name: str) -> None:
    """Once per process and scenario: index new or changed documents, start adapter training if missing."""
    lab = get_lab()
    scenario = lab.scenario(name)
    lab.ensure_ingested(scenario)
    lab.ensure_adapter_training(scenario)


def current_scenario() -> Scenario:
    lab = get_lab()
    scenarios = {s.name: s for s in lab.scenarios()}
    if not scenarios:
        st.error(f"No scenario found in {lab.settings.scenarios_dir}. Add a scenario folder (see README).")
        st.stop()
    name = st.session_state.get("scenario")
    if name not in scenarios:
        name = lab.settings.default_scenario if lab.settings.default_scenario in scenarios else next(iter(scenarios))
        st.session_state["scenario"] = name
    try:
        lab.backend.check()
        prepare_scenario(name)
    except (ChromaUnavailable, BackendNotConfigured) as error:  # a server is down or unset: say so on every page
        st.error(str(error), icon=":material/cloud_off:")
        st.stop()
    return scenarios[name]


def chat_id() -> str:
    """This browser's chat id, kept in the page's address (?chat=...) so a reload or a server restart
    finds its chats; a page link drops the address's parameters, so every page puts it back."""
    chat = st.query_params.get("chat")
    if not is_chat_id(chat):
        chat = st.session_state.get("chat_id") or new_chat_id()
    st.session_state["chat_id"] = chat
    if st.query_params.get("chat") != chat:
        st.query_params["chat"] = chat
    return chat
