"""Overview: what the four modes are, the Lab's status, and questions to try."""

import streamlit as st

from core.modes import MODE_LABELS, MODES
from core.safe_text import escape_markdown
from core.scenario import load_eval_questions
from ui.access import render_config_warnings
from ui.chat import MODE_HELP
from ui.models import render_model_choice
from ui.resources import current_scenario, get_lab
from ui.sidebar import MODE_ICONS, adapter_summary, page_frame

page_frame()
lab = get_lab()
scenario = current_scenario()
status = lab.status(scenario)
questions = load_eval_questions(scenario)

st.title(":material/science: RAG vs Fine-Tuning Lab")
render_config_warnings()
st.markdown(
    "One small language model, four ways to answer. Ask the same question in each mode and see what "
    "retrieval and fine-tuning each change — facts, freshness, style and honesty."
)
for column, mode in zip(st.columns(4, border=True), MODES, strict=True):
    with column:
        st.subheader(f"{MODE_ICONS[mode]} {MODE_LABELS[mode]}")
        st.write(MODE_HELP[mode])
        st.page_link(f"pages/{mode}.py", label=f"Chat with {MODE_LABELS[mode]}", icon=":material/chat:")

st.header("Status")
if status["dtype"] == "remote":
    st.markdown(f"**Model** {escape_markdown(status['model'])} on the OpenAI-compatible server {status['device']}")
else:
    st.markdown(
        f"**Model** {status['model']} on {status['device']} ({status['dtype']}), "
        f"context window {status['context_window']} tokens"
    )
metrics = st.columns(3)
metrics[0].metric(
    "Documents", status["documents"], f"{status['chunks']} chunks", delta_color="off", delta_arrow="off", border=True
)
metrics[1].metric(
    "Adapter",
    "ready" if status["adapter"] else "not yet",
    adapter_summary(status),
    delta_color="off",
    delta_arrow="off",
    border=True,
)
metrics[2].metric(
    "Scenario questions", len(questions), "in eval.jsonl", delta_color="off", delta_arrow="off", border=True
)
st.caption(f"Data folder: `{status['data_dir']}` · Scenario folder: `{scenario.path}`")
render_model_choice(scenario)

st.header(escape_markdown(scenario.title))
st.write(escape_markdown(scenario.description))
if questions:
    st.subheader("Questions to try")
    kinds = {
        "answerable": "in the docs",
        "fresh": "changed since training",
        "unanswerable": "not in the docs",
        "style": "house style",
    }
    for kind, label in kinds.items():
        sample = [q["question"] for q in questions if q["kind"] == kind][:2]
        for question in sample:
            st.markdown(f"- {escape_markdown(question)} · *{label}*")
