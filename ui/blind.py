"""What the blind vote cannot hide, said on the Compare page: the house-style greeting and sign-off give the
fine-tuned and hybrid columns away (teaching that style is what fine-tuning is for). "Blind within
style" sets Compare to fine-tuned against hybrid, blind: both answers have the style, so only their
content tells them apart."""

import streamlit as st

from core.answers.compare import Column
from core.common.scenario import Scenario
from ui.resources import get_lab

# The Compare view's widget keys (ui/compare.py): the preset sets them before the widgets are drawn.
BLIND_KEY = "compare_blind"


def columns_key(scenario: Scenario) -> str:
    return f"compare_columns:{scenario.name}"


def within_style_columns(scenario: Scenario) -> list[str] | None:
    """The keys of the fine-tuned and hybrid columns with the active adapter; None without one."""
    lab = get_lab()
    if lab.remote:  # the server's fine-tuned model stands for every adapter
        return [Column("finetuned").key, Column("hybrid").key]
    active = lab.active_adapter(scenario)
    return [Column("finetuned", active.name).key, Column("hybrid", active.name).key] if active else None


def render_style_note(scenario: Scenario) -> None:
    """Under the Compare title while the blind vote is on: why the adapter columns are easy to spot, and the preset."""
    if not st.session_state.get(BLIND_KEY):
        return
    columns = within_style_columns(scenario)
    note, preset = st.columns([4, 1], vertical_alignment="center")
    note.caption(
        ":material/visibility: Blind, but not invisible: the house-style greeting and sign-off give the fine-tuned "
        "and hybrid answers away. That is the point of fine-tuning. To judge content alone, compare two answers "
        "that share the style."
    )
    if columns:
        preset.button(
            "Blind within style",
            icon=":material/style:",
            help="Fine-tuned against hybrid, labels hidden: both answers have the house style.",
            on_click=_within_style,
            args=(columns_key(scenario), columns),
            width="stretch",
        )


def _within_style(key: str, columns: list[str]) -> None:
    st.session_state[key] = columns
    st.session_state[BLIND_KEY] = True
