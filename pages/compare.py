"""Compare: one question, every chosen mode side by side, generated in one batch; optional blind vote."""

import streamlit as st

from ui.blind import render_style_note
from ui.compare import render_compare_page
from ui.resources import current_scenario
from ui.sidebar import page_frame

page_frame()
st.title(":material/view_column: Compare")
st.caption(
    "Ask once; every column answers the same question from the same model, decoding setup and seed, "
    "so the differences come from retrieval and the adapter alone."
)
scenario = current_scenario()
render_style_note(scenario)
render_compare_page(scenario)
