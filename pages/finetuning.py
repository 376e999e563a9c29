"""Fine-tuning studio: check a training set, train a LoRA adapter in the background, watch it, manage adapters."""

import streamlit as st

from core.text.safe_text import escape_markdown
from ui.access import is_admin
from ui.finetuning import (
    choose_dataset,
    dataset_report,
    render_adapters,
    render_history,
    render_live_jobs,
    render_report,
    render_settings,
    render_start,
)
from ui.resources import current_scenario, get_lab
from ui.sidebar import page_frame

page_frame()
scenario = current_scenario()
active = get_lab().active_adapter(scenario)
st.title(":material/model_training: Fine-tuning")
st.caption(
    f"Scenario **{escape_markdown(scenario.title)}** · active adapter: "
    f"**{escape_markdown(active.name) if active else 'none'}**. Training runs in its own process, one job at a "
    "time: reload the page or keep chatting meanwhile."
)
render_live_jobs(scenario)
train, adapters, history = st.tabs(
    [":material/model_training: Train", ":material/inventory_2: Adapters", ":material/history: Job history"]
)
with train:
    source = choose_dataset(scenario)
    if source is None and is_admin():
        st.info("Upload a training set to check it.", icon=":material/upload:")
    elif source is None:
        st.info("This scenario has no training set (train.jsonl).", icon=":material/info:")
    else:
        with st.expander("Settings", expanded=True, icon=":material/tune:"):
            config = render_settings(scenario)
        report = dataset_report(source, scenario, config.max_seq_len)
        render_report(report, source, scenario)
        if report.examples:
            render_start(scenario, source, config, report)
with adapters:
    render_adapters(scenario)
with history:
    render_history(scenario)
