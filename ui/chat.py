"""The chat view all four mode pages share: history, streamed answer, metrics and sources.

An answer streams as Compare's columns do: stopped when it derails (core.text.derailment), and, in RAG
and hybrid, shown a checked sentence at a time, so a draft the figure or topic check withholds never
appears first (core.answers.release).
"""

import time

import streamlit as st

from core.answers.chats import clear_chat, load_turns, save_exchange
from core.answers.release import Shown
from core.common.scenario import Scenario, load_eval_questions, questions_to_try
from core.common.vocabulary import ADAPTER_MODES, MODE_LABELS, RETRIEVAL_MODES, Answer
from core.text.excerpts import readable_excerpt
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
MODE_HELP = {
    "base": "The model as shipped: no documents, no fine-tuning. It only knows what it learned in pre-training.",
    "rag": "The base model plus retrieval: the most relevant knowledge-base chunks are put in the prompt as sources.",
    "finetuned": "The base model with this scenario's LoRA adapter: it learned the house style and facts from train.jsonl.",
    "hybrid": "The fine-tuned model plus retrieval: house style from the adapter, current facts from the knowledge base.",
}


def render_mode_page(mode: str) -> None:
    page_frame()
    lab = get_lab()
    scenario = current_scenario()
    st.title(f"{MODE_ICONS[mode]} {MODE_LABELS[mode]}")
    st.caption(f"{MODE_HELP[mode]} Scenario: **{escape_markdown(scenario.title)}**.")
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
    question = st.chat_input(f"Ask the {MODE_LABELS[mode]} model…") or picked
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


def render_answer_details(answer: Answer) -> None:
    if answer.error:
        st.error(answer.error, icon=":material/cloud_off:")
    render_stopped(answer)
    for note in answer.notes:
        st.info(note, icon=":material/info:")
    if answer.withheld_draft:
        with st.expander("Withheld draft"):
            st.text(answer.withheld_draft)
    if not answer.completion_tokens and not answer.prompt_tokens:
        return  # declined without the model (no source good enough): nothing was generated to measure
    first = f"first token {answer.ttft_s:.2f} s · " if answer.ttft_s is not None else ""
    cost = f" · ${answer.cost_usd:.6f}" if answer.cost_usd is not None else ""
    prompt = f" · prompt {answer.prompt_tokens} tokens" if answer.prompt_tokens else ""  # unknown when stopped
    st.caption(
        f"{first}total {answer.total_s:.2f} s · {answer.completion_tokens} tokens · "
        f"{answer.tokens_per_s:.1f} tok/s{prompt}{cost}"
    )
    st.caption(f"{escape_markdown(answer_origin(answer))}")
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
