"""Evaluation lab: run the eval questions through the modes, read and compare runs, get a recommendation."""

import streamlit as st

from core.evaluation.eval_store import list_runs
from core.text.safe_text import escape_markdown
from ui.evaluation import (
    pick_run,
    render_comparison,
    render_decision,
    render_live_runs,
    render_recent_failures,
    render_run,
    render_start,
)
from ui.resources import current_scenario, get_lab
from ui.sidebar import page_frame

page_frame()
scenario = current_scenario()
st.title(":material/science: Evaluation")
st.caption(
    f"Scenario **{escape_markdown(scenario.title)}**: every question of its eval set, answered in each mode with "
    "one base model, one greedy decoding setup and one seed, then scored. Runs go in the background, one job at a "
    "time, and are saved with their settings."
)
render_live_runs(scenario)
render_recent_failures(scenario)
runs = list_runs(get_lab().settings.data_dir, scenario.name)
results, decision, compare, start = st.tabs(
    [
        ":material/bar_chart: Results",
        ":material/recommend: Decision card",
        ":material/compare_arrows: Compare runs",
        ":material/play_arrow: New run",
    ]
)
if not runs:
    for tab in (results, decision, compare):
        tab.info("No saved run yet for this scenario: start one in the New run tab.", icon=":material/info:")
else:
    with results:
        run = pick_run(scenario, runs, f"eval_run:{scenario.name}")
        render_run(run)
    with decision:
        render_decision(run)
    with compare:
        render_comparison(scenario, runs)
with start:
    render_start(scenario)
