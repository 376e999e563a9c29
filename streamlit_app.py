"""RAG vs Fine-Tuning Lab: page config, navigation over pages/, and the shared sidebar."""

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="RAG vs Fine-Tuning Lab", page_icon="🧪", layout="wide")

navigation = st.navigation(
    {
        "Lab": [st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True)],
        "Chat": [
            st.Page("pages/base.py", title="Base", icon=":material/deployed_code:"),
            st.Page("pages/rag.py", title="RAG", icon=":material/menu_book:"),
            st.Page("pages/finetuned.py", title="Fine-tuned", icon=":material/tune:"),
            st.Page("pages/hybrid.py", title="Hybrid", icon=":material/join:"),
        ],
    }
)
render_sidebar()
navigation.run()
