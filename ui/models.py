"""The model switch on the overview: the bundled models, which one answers, and (admins) a switch."""

import streamlit as st

from core.common.model_catalog import BUNDLED_MODELS
from core.common.scenario import Scenario
from core.text.safe_text import escape_markdown
from ui.access import admin_note, is_admin
from ui.resources import get_lab


def render_model_choice(scenario: Scenario) -> None:
    lab = get_lab()
    if lab.remote:
        return  # the server's model answers; the embedded ones are not used
    st.subheader("Models")
    active = lab.model_label
    for model in BUNDLED_MODELS.values():
        mark = ":material/radio_button_checked: **answering now**" if model.name == active else ""
        st.markdown(f"- **{escape_markdown(model.name)}** — {escape_markdown(model.summary)} {mark}")
    if active not in {m.name for m in BUNDLED_MODELS.values()}:
        st.markdown(f"- **{escape_markdown(active)}** (set by LAB_MODEL) :material/radio_button_checked: answering now")
    if not is_admin():
        admin_note("switch the model")
        return
    choices = lab.model_choices()
    current = next(key for key, name in choices.items() if name == active)
    with st.form("model_switch", border=False):
        chosen = st.selectbox(
            "Model",
            list(choices),
            index=list(choices).index(current),
            format_func=choices.get,
            help="Every page and visitor of this app switches. Adapters belong to the model they were trained "
            "on: each model has its own. The first switch to a bundled model converts it (about a minute).",
        )
        if st.form_submit_button("Switch model", icon=":material/swap_horiz:") and chosen != current:
            with st.spinner(f"Loading {choices[chosen]}…"):
                lab.switch_model(chosen)
                lab.warm_up()
                lab.ensure_adapter_training(scenario)
            st.toast(f"{choices[chosen]} answers now.", icon=":material/check:")
            st.rerun()
