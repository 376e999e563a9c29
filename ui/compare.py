"""The compare view: one question, one column per chosen mode, streamed from one batch; blind voting.

Turns are saved (core.answers.comparisons) under the chat id in the page's address, so a reload brings
them back with their votes. Each question starts fresh unless "Follow up" is on; a follow-up shows, in
each column, the earlier exchanges that column continued.

While a comparison streams it lives in session state, with the stream itself, not in this script run:
a click (a Stop button, a new question) reruns the script, which then picks the same stream up where
it was, applies the stop and goes on drawing (LiveComparison says how two runs share it). A derailed
column is stopped by the same rule as on the mode pages (core.text.derailment); "What changed" is
drawn as soon as two columns have ended and grows as the others end; a RAG or hybrid column shows
its text a checked sentence at a time (core.answers.release).
"""

import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import streamlit as st

from core.answers.compare import Column, ComparisonStream
from core.answers.comparisons import (
    ComparisonTurn,
    clear_comparisons,
    conversation,
    follow_up_refusal,
    load_comparisons,
    save_comparison,
    thread,
)
from core.common.scenario import Scenario
from core.common.vocabulary import ADAPTER_MODES, MODES, Answer, Decoding
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
from ui.chat import (
    REDRAW_EVERY_S,
    draw_streaming,
    limited_chat_input,
    render_answer_details,
    render_stopped,
    suggested_question,
)
from ui.finetuning import render_adapter_wait
from ui.resources import chat_id, get_lab
from ui.sidebar import MODE_ICONS

MAX_COLUMNS = 6
EARLIER_ANSWER_CHARS = 240  # the full answer is in its own turn above
PENDING_QUESTION = "compare:pending_question"  # asked from another page, answered when Compare opens
STOPPED_BY_HAND = "Stopped by the presenter."
FOLLOW_UP_HELP = (
    "On: each column continues its own conversation above, shown in the column. Off: the next question "
    "starts fresh, so no column's answer depends on what it said before."
)


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

    turns = render_comparisons(scenario, adapter_shown)
    refusal = follow_up_refusal(turns, blind)
    follow_up = bool(turns) and st.toggle(
        "Follow up on the answers above",
        key="compare_follow_up",
        disabled=bool(refusal),
        help=refusal or FOLLOW_UP_HELP,
    )
    columns = [by_key[key] for key in chosen_keys]
    if len(columns) < 2:
        st.info("Choose two or more columns to compare.")
        st.chat_input("Choose two or more columns first", disabled=True)
        return
    picked = suggested_question(scenario, "suggested:compare") or st.session_state.pop(PENDING_QUESTION, None)
    question = limited_chat_input("compare_chat_input", "Ask all columns at once…") or picked
    if question and question.strip():
        earlier = thread(turns) if follow_up and not refusal else []
        ask_columns(scenario, columns, question, earlier, decoding, blind, adapter_shown)


def _keys(scenario: Scenario) -> tuple[str, str]:
    """Where this browser's turns, and a comparison still streaming, sit in session state."""
    chat = chat_id()
    return f"compare:{chat}:{scenario.name}", f"compare_live:{chat}:{scenario.name}"


def render_comparisons(scenario: Scenario, adapter_shown: bool) -> list[ComparisonTurn]:
    """The saved turns (loaded once per session from the chat id in the page's address, so a reload or a
    server restart finds them), a Clear button, and a comparison still streaming; returns the turns."""
    data_dir, chat = get_lab().settings.data_dir, chat_id()
    turns_key, live_key = _keys(scenario)
    if turns_key not in st.session_state:
        st.session_state[turns_key] = load_comparisons(data_dir, chat, scenario.name)
    turns: list[ComparisonTurn] = st.session_state[turns_key]
    live: LiveComparison | None = st.session_state.get(live_key)
    if (turns or live) and st.sidebar.button(
        "Clear the comparison",
        icon=":material/delete:",
        key="clear_comparison",
        help="Deletes these questions and answers; votes stay on the leaderboard.",
    ):
        st.session_state.pop(live_key, None)  # a comparison still streaming ends with its stream
        clear_comparisons(data_dir, chat, scenario.name)
        turns.clear()
        st.rerun()
    for index, turn in enumerate(turns):
        render_turn(scenario, turn, turns[:index], adapter_shown)
    if live is not None:  # still streaming when this run began (a click reran the page): carry on
        finish_live(scenario, live, turns, adapter_shown)
    return turns


def ask_columns(scenario, columns, question, earlier, decoding, blind, adapter_shown) -> None:
    """Asks every column at once, each continuing its conversation in `earlier` (the turns it follows
    up; [] starts fresh), streams the answers and saves the turn."""
    histories = [conversation(earlier, column.key) for column in columns]
    stream = get_lab().compare(scenario, columns, question, histories, decoding, stop_derailed=True)
    comparison_id = new_comparison_id()
    turn = ComparisonTurn(
        id=comparison_id,
        question=question,
        columns=[column.key for column in columns],
        answers=stream.answers,
        order=blind_order(comparison_id, len(columns)) if blind else list(range(len(columns))),
        blind=blind,
        follow_up=bool(earlier),
        decoding=decoding.__dict__,
    )
    live = LiveComparison(turn, stream, iter(stream), earlier)
    st.session_state[_keys(scenario)[1]] = live
    turns = st.session_state[_keys(scenario)[0]]
    finish_live(scenario, live, turns, adapter_shown)


@dataclass
class LiveComparison:
    """A comparison still streaming, kept across script runs: its turn (whose answers fill in as the
    stream goes), the stream, the iterator this page reads it through, and the turns it follows up.

    A click reruns the page at once in a new thread (Streamlit's fast reruns), while the old run may
    still be inside the stream, waiting for its next piece; it stops at its next drawing. So the
    pieces are read under `lock`, one run at a time, and what a run draws comes from the stream's
    state (the answers, `ended`), never from pieces it read itself, which another run may have."""

    turn: ComparisonTurn
    stream: ComparisonStream
    pieces: Iterator
    earlier: list[ComparisonTurn]
    lock: threading.Lock = field(default_factory=threading.Lock)
    saved: bool = False

    def read(self) -> Iterator:
        while True:
            with self.lock:
                piece = next(self.pieces, None)
            if piece is None:
                return
            yield piece


def finish_live(scenario: Scenario, live: LiveComparison, turns: list[ComparisonTurn], adapter_shown: bool) -> None:
    """Draws the streaming comparison with its Stop buttons, reads it to its end, saves the turn and
    reruns the page. A click meanwhile ends this run (Streamlit's rerun and stop are no Exception):
    the comparison stays in session state for the next run to pick up."""
    live_key = _keys(scenario)[1]
    turn, stream = live.turn, live.stream
    columns = [Column.from_key(key) for key in turn.columns]
    render_question(turn)
    if st.button("Stop all columns", key=f"stop_all:{turn.id}", icon=":material/stop_circle:"):
        for index in range(len(columns)):
            stream.stop(index, STOPPED_BY_HAND)
    names = [column.label(adapter_shown) for column in columns]
    boxes, stops = {}, {}
    for position, (box, index) in enumerate(zip(st.columns(len(columns), border=True), turn.order, strict=True)):
        with box:
            st.markdown(_heading(columns[index], position, turn.blind, adapter_shown))
            if turn.follow_up:
                render_conversation(conversation(live.earlier, turn.columns[index]), names[index])
            stops[index] = st.empty()
            # Keyed by position: a widget's key reaches the browser, and a column's index would name its mode.
            if index not in stream.ended and stops[index].button(
                "Stop", key=f"stop:{turn.id}:{position}", icon=":material/stop:", type="tertiary"
            ):
                stream.stop(index, STOPPED_BY_HAND)
            boxes[index] = st.empty()
    changed = st.empty()

    def ended(index: int) -> None:
        stops[index].empty()
        with boxes[index].container():
            render_final(turn.answers[index], hidden=turn.blind)
        if not turn.blind:  # what changed would give the modes away before the vote
            with changed.container():
                render_what_changed(turn.answers, names, stream.ended)

    try:
        stream_into(boxes, stream, live.read(), ended)
    except Exception:
        st.session_state.pop(live_key, None)  # a failed stream is not resumed
        raise
    with live.lock:  # once, whichever run gets here first
        if not live.saved:
            turn.wall_s = stream.wall_s
            save_comparison(get_lab().settings.data_dir, chat_id(), scenario.name, turn)
            turns.append(turn)
            live.saved = True
    st.session_state.pop(live_key, None)
    st.rerun()


def stream_into(boxes: dict, stream, pieces: Iterable | None = None, ended=None) -> None:
    """Shows each column's text in its box as the batch decodes (boxes: column index -> st.empty): what
    may be shown of it yet (core.answers.release), and its final answer once it ends (`ended(column)`
    draws it; by default its text). `pieces`: where to read the stream, when a page resumes one."""
    ended = ended or (lambda column: boxes[column].markdown(escape_markdown(stream.answers[column].text)))
    drawn: set[int] = set()
    shown_at = dict.fromkeys(boxes, 0.0)

    def draw_ended() -> None:  # from the stream's state: another run may have read the piece that said so
        for column in sorted(stream.ended - drawn):
            drawn.add(column)
            ended(column)

    draw_ended()
    for column in set(boxes) - drawn:
        draw_streaming(boxes[column], stream.shown(column))
    for piece in pieces if pieces is not None else stream:
        draw_ended()
        # Redrawing every box on every token costs the model CPU time on a small machine: ~6 redraws/s.
        if piece.column not in drawn and time.monotonic() - shown_at[piece.column] > REDRAW_EVERY_S:
            draw_streaming(boxes[piece.column], stream.shown(piece.column))
            shown_at[piece.column] = time.monotonic()
    draw_ended()


def render_question(turn: ComparisonTurn) -> None:
    with st.chat_message("user"):
        st.markdown(escape_markdown(turn.question))
        if turn.follow_up:
            st.caption(":material/forum: A follow-up: each column continued its own conversation, shown in it.")


def render_conversation(messages: list[dict], name: str) -> None:
    """The earlier exchanges a column (called `name`) continued, above its new answer (shortened: each is
    in full above). Never in a hidden blind turn: blind questions start fresh."""
    if not messages:
        st.caption(":material/forum: No earlier turn in this column: it answered fresh.")
        return
    with st.container(border=True):
        st.caption(f":material/forum: Continues {len(messages) // 2} earlier exchange(s):")
        for message in messages:
            who = "You" if message["role"] == "user" else escape_markdown(name)
            text = textwrap.shorten(message["content"], EARLIER_ANSWER_CHARS, placeholder=" …") or "(no text)"
            st.caption(f"**{who}:** {escape_markdown(text)}")


def render_final(answer: Answer, hidden: bool) -> None:
    """A column's finished answer: its text, why it stopped early, and unless hidden its details."""
    st.markdown(escape_markdown(answer.text) or "*(no text)*")
    if hidden:  # timings, prompt size and sources would give the modes away; a stop does not
        render_stopped(answer)
    else:
        render_answer_details(answer)


def _heading(column: Column, position: int, hidden: bool, adapter_shown: bool) -> str:
    if hidden:
        return f"**Answer {letters(position + 1)[-1]}**"
    return f"**{MODE_ICONS[column.mode]} {escape_markdown(column.label(adapter_shown))}**"


def render_turn(scenario: Scenario, turn: ComparisonTurn, before: list[ComparisonTurn], adapter_shown: bool) -> None:
    """A finished turn; `before`: the turns above it, whose thread a follow-up continued."""
    columns = [Column.from_key(key) for key in turn.columns]
    names = [column.label(adapter_shown) for column in columns]
    earlier = thread(before) if turn.follow_up else []
    render_question(turn)
    for position, (box, index) in enumerate(zip(st.columns(len(columns), border=True), turn.order, strict=True)):
        with box:
            st.markdown(_heading(columns[index], position, turn.hidden, adapter_shown))
            if turn.follow_up:
                render_conversation(conversation(earlier, turn.columns[index]), names[index])
            render_final(turn.answers[index], turn.hidden)
    if turn.blind:
        render_vote(scenario, turn)
    if not turn.hidden:
        how = "one batch" if turn.answers[0].backend == "local" else "concurrent requests to the server"
        st.caption(f"All {len(columns)} answers came from {how} in {turn.wall_s:.2f} s.")
        if note := get_lab().same_answer_note():
            st.caption(note)
        render_what_changed(turn.answers, names)


def render_vote(scenario: Scenario, turn: ComparisonTurn) -> None:
    shown = letters(len(turn.columns))
    if turn.vote is not None:
        choice = turn.vote
        if choice in shown:
            column = Column.from_key(turn.columns[turn.order[shown.index(choice)]])
            st.success(f"You voted for answer {choice}: **{column.label(True)}**.", icon=":material/how_to_vote:")
        else:
            st.success(f"You voted: {CHOICE_LABELS[choice]}.", icon=":material/how_to_vote:")
        return
    st.caption("Which answer is best? The labels are revealed after your vote.")
    choices = [(label, f"{label} is best") for label in shown] + [(TIE, "Tie"), (ALL_BAD, "All bad")]
    for button_box, (choice, text) in zip(st.columns(len(choices)), choices, strict=True):
        if button_box.button(text, key=f"vote:{turn.id}:{choice}", width="stretch"):
            _save_vote(scenario, turn, choice)
            st.rerun()


def _save_vote(scenario: Scenario, turn: ComparisonTurn, choice: str) -> None:
    lab = get_lab()
    adapters = {a.name: a for a in lab.adapters(scenario)}
    entries = []
    for label, index in zip(letters(len(turn.columns)), turn.order, strict=True):
        answer = turn.answers[index]
        adapter = adapters.get(answer.adapter) if answer.adapter else None
        entries.append(
            {
                "label": label,
                "column": turn.columns[index],
                "mode": answer.mode,
                "adapter": answer.adapter,
                "adapter_version": adapter.metadata.get("created_at") if adapter else None,
                "text": answer.text,
                "sources": [source.name for source in answer.sources],
            }
        )
    vote = Vote(
        comparison_id=turn.id,
        scenario=scenario.name,
        question=turn.question,
        model=turn.answers[0].model,
        decoding=turn.decoding,
        entries=entries,
        choice=choice,
    )
    try:
        record_vote(lab.settings.data_dir, vote)
    except AlreadyVoted:
        st.toast("This comparison already has a vote.")
    turn.vote = choice  # saved in the votes table, where a reload reads it


def render_what_changed(answers: list[Answer], names: list[str], ended: set[int] | None = None) -> None:
    """Facts (amounts, numbers with units, times, addresses) that some answers state and others do not,
    among the answers that have ended (`ended`: their indices; None: all). Drawn once two have."""
    ended = set(range(len(answers))) if ended is None else ended
    done = sorted(ended)
    if len(done) < 2:
        return
    waiting = [names[index] for index in range(len(answers)) if index not in ended]
    # A withheld answer names the figure it did not state: it states none.
    rows = compare_facts(["" if answers[i].withheld_draft else answers[i].text for i in done])
    differing = [row for row in rows if not row.shared_by_all]
    so_far = " so far" if waiting else ""
    title = (
        f"What changed{so_far}: {len(differing)} fact(s) not in every answer"
        if rows
        else f"What changed{so_far}: no checkable facts"
    )
    with st.expander(title, icon=":material/difference:"):
        if waiting:
            st.caption(f"Still answering: {escape_markdown(', '.join(waiting))}. Their facts join when they end.")
        if not rows:
            st.caption("None of the answers states an amount, a number with a unit, a time or an address.")
            return
        shown_names = [names[index] for index in done]
        table = [
            {"Fact": row.fact.text, "Only in some": not row.shared_by_all}
            | {name: present for name, present in zip(shown_names, row.present, strict=True)}
            for row in rows
        ]
        st.dataframe(table, hide_index=True, width="stretch")
        for position, name in enumerate(shown_names):
            only = [row.fact.text for row in rows if row.present[position] and sum(row.present) == 1]
            if only:
                st.markdown(f"Only **{escape_markdown(name)}** says: " + " · ".join(escape_markdown(f) for f in only))
