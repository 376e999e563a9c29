"""RAG vs Fine-Tuning Lab: the router over pages/. Each page draws the shared frame (ui.sidebar.page_frame)."""

import streamlit as st

from core.common.vocabulary import MODE_LABELS, MODES
from ui.access import require_access
from ui.sidebar import EXTRA_PAGES, configure_page

# The sidebar's links come from ui.sidebar, so they look the same even when Streamlit serves a
# pages/ script directly (a server's very first session opened on a sub-page skips the router).
# No icons here: a page's icon becomes the tab's favicon, and Streamlit fetches a :material: one from
# Google's font CDN. The tab shows the app's own icon (configure_page) and nothing leaves the server.
navigation = st.navigation(
    [st.Page("pages/home.py", title="Overview", default=True)]
    + [st.Page(f"pages/{mode}.py", title=MODE_LABELS[mode]) for mode in MODES]
    + [st.Page(path, title=title) for path, title, _ in EXTRA_PAGES],
    position="hidden",
)
configure_page()
require_access()  # nothing but the login renders until the visitor is in
navigation.run()
