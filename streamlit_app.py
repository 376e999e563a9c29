"""RAG vs Fine-Tuning Lab: page config, navigation over pages/, and the shared sidebar."""

import streamlit as st

from core.modes import MODE_LABELS, MODES
from ui.chat import MODE_ICONS
from ui.sidebar import render_sidebar

st.set_page_config(page_title="RAG vs Fine-Tuning Lab", page_icon="🧪", layout="wide")

navigation = st.navigation(
    {
        "Lab": [st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True)],
        "Chat": [st.Page(f"pages/{mode}.py", title=MODE_LABELS[mode], icon=MODE_ICONS[mode]) for mode in MODES],
    }
)
render_sidebar()
navigation.run()
