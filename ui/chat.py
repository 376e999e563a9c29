"""The chat view all four mode pages share: history, the length limit, streamed answer, plain-words figures and sources.

An answer streams as Compare's columns do: stopped when it derails (core.text.derailment), and, in RAG
and hybrid, shown a checked sentence at a time, so a draft the figure or topic check withholds never
appears first (core.answers.release).
"""

import re
import time

import streamlit as st

from core.answers.chats import clear_chat, load_turns, save_exchange
from core.answers.release import Shown
from core.common.scenario import Scenario, load_eval_questions, questions_to_try
from core.common.vocabulary import ADAPTER_MODES, MODE_LABELS, RETRIEVAL_MODES, Answer
from core.text.excerpts import readable_excerpt
from core.text.question_limit import question_problem
from core.text.safe_text import escape_markdown
from core.training.adapters import AdapterNotReady
from ui.finetuning import render_adapter_wait
from ui.resources import chat_id, current_scenario, get_lab
from ui.sidebar import MODE_ICONS, page_frame

REDRAW_EVERY_S = 0.15  # redrawing on every token costs the model CPU time on a small machine
THINKING = {
    "base": "Thinking…",
    "rag": "Searching the knowledge base and reading the sources…",
    "finetuned": "Thinking with the adapter…",
    "hybrid": "Searching the knowledge base and reading the sources…",
}
# What each mode is, in plain words (the overview's cards, each mode page), and the technical account
# one click away (the "?" beside them).
MODE_HELP = {
    "base": "The model as it comes: no documents, no extra training. It only knows what it learned before release.",
    "rag": "The model plus a search of the knowledge base: the passages closest to the question are handed to it "
    "as sources to answer from.",
    "finetuned": "The model after extra training on this scenario's example conversations: it learned the house "
    "style and the facts in them.",
    "hybrid": "Both: the fine-tuned model, handed the knowledge base's passages. House style from the training, "
    "current facts from the documents.",
}
MODE_DETAILS = {
    "base": "The base model with no adapter and no retrieved context (greedy decoding by default).",
    "rag": "Retrieval-augmented generation: the top-k knowledge-base chunks (embeddings and BM25, fused) go into "
    "the prompt as numbered sources; the figure and topic checks run on the answer.",
    "finetuned": "The base model with the scenario's LoRA adapter, trained on train.jsonl (part of it "
    "context-aware: with retrieved sources in the prompt).",
    "hybrid": "The LoRA adapter with the RAG prompt: retrieved chunks as numbered sources, answered by the "
    "fine-tuned model; the figure and topic checks run on the answer.",
}


def render_mode_page(mode: str) -> None:
    page_frame()
    lab = get_lab()
    scenario = current_scenario()
    st.title(f"{MODE_ICONS[mode]} {MODE_LABELS[mode]}")
    st.caption(f"{MODE_HELP[mode]} Scenario: **{escape_markdown(scenario.title)}**.", help=MODE_DETAILS[mode])
    if mode in ADAPTER_MODES and lab.active_adapter(scenario) is None:
        render_adapter_wait(scenario)
        st.stop()

    # The chat is saved under the id in the page's address: a reload or a server restart finds it again.
    data_dir, chat = lab.settings.data_dir, chat_id()
    history_key = f"chat:{chat}:{scenario.name}:{mode}"
    if history_key not in st.session_state:
        st.session_state[history_key] = load_turns(data_dir, chat, scenario.name, mode)
    history: list[dict] = st.session_state[history_key]
    if history and st.sidebar.button("Clear this chat", icon=":material/delete:", key="clear_chat"):
        clear_chat(data_dir, chat, scenario.name, mode)
        history.clear()
        st.rerun()
    for turn in history:
        with st.chat_message(turn["role"]):
            st.markdown(escape_markdown(turn["content"]))
            if turn.get("answer"):
                render_answer_details(turn["answer"])

    picked = suggested_question(scenario, f"suggested:{mode}")
    question = limited_chat_input(f"chat_input:{mode}", f"Ask the {MODE_LABELS[mode]} model…") or picked
    if not question or not question.strip():
        return
    with st.chat_message("user"):
        st.markdown(escape_markdown(question))
    with st.chat_message("assistant"):
        try:
            history_messages = [{"role": t["role"], "content": t["content"]} for t in history]
            stream = lab.ask(scenario, mode, question, history_messages, stop_derailed=True)
        except AdapterNotReady as error:
            st.warning(str(error))
            return
        shown = st.empty()
        pieces = iter(stream)
        with st.spinner(THINKING[mode]):  # until the first word: retrieval and reading the prompt
            next(pieces, None)
        drawn_at = 0.0
        for _ in pieces:
            if time.monotonic() - drawn_at > REDRAW_EVERY_S:
                draw_streaming(shown, stream.shown())
                drawn_at = time.monotonic()
        answer = stream.answer
        shown.markdown(escape_markdown(answer.text))  # final: checked, maybe a decline in place of the draft
        render_answer_details(answer)
    save_exchange(data_dir, chat, scenario.name, mode, question, answer)
    history.append({"role": "user", "content": question})
    history.append({"role": "assistant", "content": answer.text, "answer": answer})


def limited_chat_input(key: str, placeholder: str) -> str | None:
    """st.chat_input with the Lab's length limit (core.text.question_limit). A longer message is not sent:
    it goes back into the box, with a message saying how much to cut, so nothing typed is lost.

    Not `max_chars`: Streamlit's chat box then silently drops a paste that would go over the limit (its
    change handler ignores the whole change), so a pasted e-mail would vanish without a word."""
    problem_key = f"{key}:too_long"

    def checked() -> None:
        text = st.session_state.get(key)
        if isinstance(text, str) and (problem := question_problem(text)):
            st.session_state[problem_key] = problem
            st.session_state[key] = text  # shown in the box again instead of sent
        else:
            st.session_state.pop(problem_key, None)

    if problem := st.session_state.pop(problem_key, None):
        st.warning(f"{problem} It is back in the box below.", icon=":material/short_text:")
    question = st.chat_input(placeholder, key=key, on_submit=checked)
    return question if question and not question_problem(question) else None


def suggested_question(scenario: Scenario, key: str) -> str | None:
    """The scenario's questions to try as chips above the chat box; returns the one just clicked, once."""
    questions = [question for question, _ in questions_to_try(load_eval_questions(scenario))]
    if not questions:
        return None

    def clicked() -> None:  # remember the question, and clear the chip so it can be clicked again
        st.session_state[f"{key}:asked"] = st.session_state[key]
        st.session_state[key] = None

    st.pills(
        "Questions to try",
        questions,
        key=key,
        on_change=clicked,
        format_func=escape_markdown,
        label_visibility="collapsed",
    )
    return st.session_state.pop(f"{key}:asked", None)


CLOSENESS_HELP = (
    "How close the passage's meaning is to the question (cosine similarity of their embeddings): 1 is the "
    "same meaning, around 0.3 and below is loosely related. Highlighted sentences back the answer."
)


def render_excerpt(source: str, answer: str) -> str:
    """A source as readable Markdown: headings bold, the sentences that back the answer highlighted."""
    shown = []
    for line in readable_excerpt(source, answer):
        text = escape_markdown(line.text)
        shown.append(f"**{text}**" if line.heading else f":orange-background[{text}]" if line.backs_answer else text)
    return "  \n".join(shown)


def answer_origin(answer: Answer) -> str:
    """Which backend, server and model wrote the answer."""
    if answer.backend == "openai":
        return f"OpenAI-compatible server {answer.server} · model {answer.model}"
    adapter = f" + adapter {answer.adapter}" if answer.adapter else ""
    return f"Local · {answer.model}{adapter}"


def draw_streaming(box, shown: Shown) -> None:
    """An answer while it streams, in `box` (an st.empty): what may be shown of it yet, and why the rest waits."""
    with box.container():
        if shown.text:
            st.markdown(escape_markdown(shown.text) + " ▌")
        else:
            st.caption(":material/hourglass_top: Thinking…")
        if shown.held:
            st.caption(":material/fact_check: Checking the answer against the knowledge base…")


def render_stopped(answer: Answer) -> None:
    if answer.stopped:
        st.info(answer.stopped, icon=":material/stop_circle:")


# The engine's and the retrieval's notes, in the words a visitor reads; the original stays under Details.
PLAIN_NOTES = [
    (re.compile(r"max-new-tokens limit"), "The answer reached its length limit, so it stops mid-way."),
    (
        re.compile(r"conversation was too long .*?the (\d+) oldest turn"),
        "This conversation is longer than the model can read at once: it no longer sees the {0} oldest messages.",
    ),
    (
        re.compile(r"input was longer than the model's context window"),
        "Your message was too long for the model to read in full: it read only the beginning.",
    ),
    (
        re.compile(r"No knowledge-base passage reached the minimum score"),
        "Nothing in the knowledge base matched the question closely enough, so the model was not asked "
        "(it would only guess).",
    ),
]


def plain_note(note: str) -> str:
    """A note under an answer in plain words (the figure and topic checks already speak plainly)."""
    for pattern, words in PLAIN_NOTES:
        if found := pattern.search(note):
            return words.format(*found.groups())
    return note


def answer_summary(answer: Answer) -> str:
    """What everyone sees under an answer: how long it took. Tokens, speed and the prompt's size are details."""
    first = f" · first words after {answer.ttft_s:.1f} s" if answer.ttft_s is not None else ""
    return f"Answered in {answer.total_s:.1f} s{first}"


def render_answer_details(answer: Answer) -> None:
    if answer.error:
        st.error(answer.error, icon=":material/cloud_off:")
    render_stopped(answer)
    for note in answer.notes:
        st.info(plain_note(note), icon=":material/info:")
    if answer.withheld_draft:
        with st.expander("Withheld draft"):
            st.text(answer.withheld_draft)
    if answer.sources:
        with st.expander(f"Sources ({len(answer.sources)})"):
            for number, source in enumerate(answer.sources, 1):
                st.markdown(
                    f"**[{number}] {escape_markdown(source.name)}** · closeness {source.score:.2f} of 1",
                    help=CLOSENESS_HELP,
                )
                st.markdown(render_excerpt(source.text, answer.text))
    elif answer.mode in RETRIEVAL_MODES:
        st.caption("No source was retrieved.")
    if not answer.completion_tokens and not answer.prompt_tokens:
        return  # declined without the model (no source good enough): nothing was generated to measure
    st.caption(answer_summary(answer))
    with st.expander("Details", icon=":material/analytics:"):
        first = f"first token {answer.ttft_s:.2f} s · " if answer.ttft_s is not None else ""
        cost = f" · ${answer.cost_usd:.6f}" if answer.cost_usd is not None else ""
        prompt = (  # unknown for an answer stopped before its end
            f" · prompt {answer.prompt_tokens} tokens (the question, earlier turns and any sources)"
            if answer.prompt_tokens
            else ""
        )
        st.caption(
            f"{first}total {answer.total_s:.2f} s · {answer.completion_tokens} tokens · "
            f"{answer.tokens_per_s:.1f} tok/s{prompt}{cost}"
        )
        st.caption(f"{escape_markdown(answer_origin(answer))}")
        for note in answer.notes:
            if plain_note(note) != note:
                st.caption(escape_markdown(note))
