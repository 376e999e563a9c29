"""The compare view: one question, one column per chosen mode, streamed from one batch; blind voting.

Each turn is kept in session state with its answers, the column order it was shown in and its vote.
Each question starts fresh unless "Follow up" is on: then a column's conversation is the earlier turns
in which that column took part, and the turn says so on screen.
"""

import time
from dataclasses import replace

import streamlit as st

from core.answers.compare import Column
from core.common.scenario import Scenario
from core.common.vocabulary import ADAPTER_MODES, MODES, Decoding
from core.evaluation.arena import (
    ALL_BAD,
    CHOICE_LABELS,
    TIE,
    AlreadyVoted,
    Vote,
    blind_order,
    letters,
    new_comparison_id,
    record_vote,
)
from core.text.facts import compare_facts
from core.text.safe_text import escape_markdown
from ui.chat import render_answer_details, suggested_question
from ui.finetuning import render_adapter_wait
from ui.resources import get_lab
from ui.sidebar import MODE_ICONS

MAX_COLUMNS = 6
REDRAW_EVERY_S = 0.15
PENDING_QUESTION = "compare:pending_question"  # asked from another page, answered when Compare opens


def ask_on_compare(question: str) -> None:
    """Opens the Compare page with `question` asked in its default columns (the overview's questions to try)."""
    st.session_state[PENDING_QUESTION] = question
    st.switch_page("pages/compare.py")


def column_options(scenario: Scenario) -> tuple[list[Column], list[Column], bool]:
    """(every column on offer, the default selection, whether adapter names are shown)."""
    lab = get_lab()
    if lab.remote:  # the server's models: LAB_OPENAI_MODEL and LAB_OPENAI_FINETUNED_MODEL
        every = [Column(mode) for mode in MODES]
        return every, every, False
    adapters = lab.adapters(scenario)
    active = lab.active_adapter(scenario)
    options = [Column("base"), Column("rag")]
    for mode in ADAPTER_MODES:
        options += [Column(mode, adapter.name) for adapter in adapters]
    defaults = [Column("base"), Column("rag")]
    if active:
        defaults += [Column("finetuned", active.name), Column("hybrid", active.name)]
    return options, defaults, len(adapters) > 1


def choose_decoding() -> Decoding:
    """The page's decoding setup: the Lab's defaults, adjustable in a popover, the same for every column."""
    defaults = get_lab().decoding()
    with st.popover("Decoding", icon=":material/tune:", width="stretch"):
        max_new_tokens = st.number_input(
            "Max new tokens", 8, 1024, defaults.max_new_tokens, step=8, key="compare_max_new_tokens"
        )
        temperature = st.number_input(
            "Temperature (0 = greedy)", 0.0, 2.0, defaults.temperature, step=0.1, key="compare_temperature"
        )
        seed = st.number_input("Seed", 0, 2**31 - 1, defaults.seed, key="compare_seed")
    return replace(defaults, max_new_tokens=int(max_new_tokens), temperature=float(temperature), seed=int(seed))


def describe_decoding(decoding: Decoding) -> str:
    how = (
        "greedy"
        if decoding.temperature == 0
        else f"sampling at temperature {decoding.temperature:g}, top-p {decoding.top_p:g}"
    )
    return (
        f"Same for every column: {how} · up to {decoding.max_new_tokens} new tokens · "
        f"repetition penalty {decoding.repetition_penalty:g} · seed {decoding.seed}"
    )


def render_compare_page(scenario: Scenario) -> None:
    lab = get_lab()
    options, defaults, adapter_shown = column_options(scenario)
    by_key = {column.key: column for column in options}
    top = st.columns([4, 1, 1], vertical_alignment="bottom")
    chosen_keys = top[0].multiselect(
        "Columns",
        list(by_key),
        default=[c.key for c in defaults],
        format_func=lambda key: by_key[key].label(adapter_shown),
        max_selections=MAX_COLUMNS,
        key=f"compare_columns:{scenario.name}",
    )
    blind = top[1].toggle(
        "Blind vote",
        key="compare_blind",
        help="Hide the labels and shuffle the answers; vote, then see which is which.",
    )
    with top[2]:
        decoding = choose_decoding()
    st.caption(describe_decoding(decoding))
    if lab.active_adapter(scenario) is None:
        with st.expander("Fine-tuned and hybrid columns appear when the adapter is ready", expanded=False):
            render_adapter_wait(scenario)

    turns: list[dict] = st.session_state.setdefault(f"compare:{scenario.name}", [])
    if turns and st.sidebar.button("Clear the comparison", icon=":material/delete:"):
        turns.clear()
        st.rerun()
    for turn in turns:
        render_turn(scenario, turn, adapter_shown)
    follow_up = bool(turns) and st.toggle(
        "Follow up on the answers above",
        key="compare_follow_up",
        help="On: each column continues its own conversation above. Off: the next question starts fresh, "
        "so no column's answer depends on what it said before.",
    )

    columns = [by_key[key] for key in chosen_keys]
    if len(columns) < 2:
        st.info("Choose two or more columns to compare.")
        st.chat_input("Choose two or more columns first", disabled=True)
        return
    picked = suggested_question(scenario, "suggested:compare") or st.session_state.pop(PENDING_QUESTION, None)
    question = st.chat_input("Ask all columns at once…") or picked
    if not question or not question.strip():
        return
    turn = ask_columns(scenario, columns, question, turns if follow_up else [], decoding, blind, adapter_shown)
    turns.append(turn)
    st.rerun()


def ask_columns(scenario, columns, question, turns, decoding, blind, adapter_shown) -> dict:
    """Streams every column's answer into its own box, all from one batch; returns the finished turn."""
    lab = get_lab()
    comparison_id = new_comparison_id()
    order = blind_order(comparison_id, len(columns)) if blind else list(range(len(columns)))
    with st.chat_message("user"):
        st.markdown(escape_markdown(question))
    boxes = {}
    for position, (box, index) in enumerate(zip(st.columns(len(columns), border=True), order, strict=True)):
        with box:
            st.markdown(_heading(columns[index], position, blind, adapter_shown))
            boxes[index] = st.empty()
            boxes[index].caption(":material/hourglass_top: Thinking…")  # until this column's first word
    histories = [_history(turns, column) for column in columns]
    stream = lab.compare(scenario, columns, question, histories, decoding)
    stream_into(boxes, stream)
    return {
        "id": comparison_id,
        "question": question,
        "columns": [column.key for column in columns],
        "answers": stream.answers,
        "order": order,
        "blind": blind,
        "vote": None,
        "follow_up": bool(turns),  # the columns continued their conversations in `turns`
        "decoding": decoding.__dict__,
        "wall_s": stream.wall_s,
    }


def stream_into(boxes: dict, stream) -> None:
    """Shows each column's text in its box as the batch decodes (boxes: column index -> st.empty)."""
    texts = {column: "" for column in boxes}
    shown_at = {column: 0.0 for column in boxes}
    for piece in stream:
        texts[piece.column] += piece.text
        # Redrawing every box on every token costs the model CPU time on a small machine: ~6 redraws/s.
        if time.monotonic() - shown_at[piece.column] > REDRAW_EVERY_S:
            boxes[piece.column].markdown(escape_markdown(texts[piece.column]) + " ▌")
            shown_at[piece.column] = time.monotonic()


def _history(turns: list[dict], column: Column) -> list[dict]:
    history = []
    for turn in turns:
        if column.key in turn["columns"]:
            answer = turn["answers"][turn["columns"].index(column.key)]
            history += [{"role": "user", "content": turn["question"]}, {"role": "assistant", "content": answer.text}]
    return history


def _heading(column: Column, position: int, hidden: bool, adapter_shown: bool) -> str:
    if hidden:
        return f"**Answer {letters(position + 1)[-1]}**"
    return f"**{MODE_ICONS[column.mode]} {escape_markdown(column.label(adapter_shown))}**"


def render_turn(scenario: Scenario, turn: dict, adapter_shown: bool) -> None:
    columns = [Column.from_key(key) for key in turn["columns"]]
    hidden = turn["blind"] and turn["vote"] is None
    with st.chat_message("user"):
        st.markdown(escape_markdown(turn["question"]))
        if turn.get("follow_up"):
            st.caption(":material/forum: A follow-up: each column continued its own conversation above.")
    for position, (box, index) in enumerate(zip(st.columns(len(columns), border=True), turn["order"], strict=True)):
        answer = turn["answers"][index]
        with box:
            st.markdown(_heading(columns[index], position, hidden, adapter_shown))
            st.markdown(escape_markdown(answer.text) or "*(no text)*")
            if not hidden:  # timings, prompt size and sources would give the modes away
                render_answer_details(answer)
    if turn["blind"]:
        render_vote(scenario, turn)
    if not hidden:
        how = "one batch" if turn["answers"][0].backend == "local" else "concurrent requests to the server"
        st.caption(f"All {len(columns)} answers came from {how} in {turn['wall_s']:.2f} s.")
        if note := get_lab().same_answer_note():
            st.caption(note)
        render_what_changed(turn, columns, adapter_shown)


def render_vote(scenario: Scenario, turn: dict) -> None:
    shown = letters(len(turn["columns"]))
    if turn["vote"] is not None:
        choice = turn["vote"]
        if choice in shown:
            column = Column.from_key(turn["columns"][turn["order"][shown.index(choice)]])
            st.success(f"You voted for answer {choice}: **{column.label(True)}**.", icon=":material/how_to_vote:")
        else:
            st.success(f"You voted: {CHOICE_LABELS[choice]}.", icon=":material/how_to_vote:")
        return
    st.caption("Which answer is best? The labels are revealed after your vote.")
    choices = [(label, f"{label} is best") for label in shown] + [(TIE, "Tie"), (ALL_BAD, "All bad")]
    for button_box, (choice, text) in zip(st.columns(len(choices)), choices, strict=True):
        if button_box.button(text, key=f"vote:{turn['id']}:{choice}", width="stretch"):
            _save_vote(scenario, turn, choice)
            st.rerun()


def _save_vote(scenario: Scenario, turn: dict, choice: str) -> None:
    lab = get_lab()
    adapters = {a.name: a for a in lab.adapters(scenario)}
    entries = []
    for label, index in zip(letters(len(turn["columns"])), turn["order"], strict=True):
        answer = turn["answers"][index]
        adapter = adapters.get(answer.adapter) if answer.adapter else None
        entries.append(
            {
                "label": label,
                "column": turn["columns"][index],
                "mode": answer.mode,
                "adapter": answer.adapter,
                "adapter_version": adapter.metadata.get("created_at") if adapter else None,
                "text": answer.text,
                "sources": [source.name for source in answer.sources],
            }
        )
    vote = Vote(
        comparison_id=turn["id"],
        scenario=scenario.name,
        question=turn["question"],
        model=turn["answers"][0].model,
        decoding=turn["decoding"],
        entries=entries,
        choice=choice,
    )
    try:
        record_vote(lab.settings.data_dir, vote)
    except AlreadyVoted:
        st.toast("This comparison already has a vote.")
    turn["vote"] = choice


def render_what_changed(turn: dict, columns: list[Column], adapter_shown: bool) -> None:
    """Facts (amounts, numbers with units, times, addresses) that some answers state and others do not."""
    # A withheld answer names the figure it did not state: it states none.
    rows = compare_facts(["" if getattr(a, "withheld_draft", "") else a.text for a in turn["answers"]])
    differing = [row for row in rows if not row.shared_by_all]
    title = (
        f"What changed: {len(differing)} fact(s) not in every answer" if rows else "What changed: no checkable facts"
    )
    with st.expander(title, icon=":material/difference:"):
        if not rows:
            st.caption("None of the answers states an amount, a number with a unit, a time or an address.")
            return
        names = [column.label(adapter_shown) for column in columns]
        table = [
            {"Fact": row.fact.text, "Only in some": not row.shared_by_all}
            | {name: present for name, present in zip(names, row.present, strict=True)}
            for row in rows
        ]
        st.dataframe(table, hide_index=True, width="stretch")
        for name, index in zip(names, range(len(names)), strict=True):
            only = [row.fact.text for row in rows if row.present[index] and sum(row.present) == 1]
            if only:
                st.markdown(f"Only **{escape_markdown(name)}** says: " + " · ".join(escape_markdown(f) for f in only))
