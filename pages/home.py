"""Overview: what the four modes are, the Lab's status, and questions to try."""

import streamlit as st

from core.common.scenario import load_eval_questions, questions_to_try
from core.common.vocabulary import MODE_LABELS, MODES
from core.text.safe_text import escape_markdown
from ui.access import render_config_warnings
from ui.chat import MODE_HELP
from ui.compare import ask_on_compare
from ui.models import render_model_choice
from ui.resources import current_scenario, get_lab
from ui.sidebar import MODE_ICONS, adapter_summary, page_frame

page_frame()
lab = get_lab()
scenario = current_scenario()
status = lab.status(scenario)
questions = load_eval_questions(scenario)

st.title(":material/science: RAG vs Fine-Tuning Lab")
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
if status.remote:
    st.markdown(f"**Model** {escape_markdown(status.model)} on the OpenAI-compatible server {status.server}")
else:
    st.markdown(
        f"**Model** {status.model} on {status.device} ({status.dtype}), context window {status.context_window} tokens"
    )
metrics = st.columns(3)
metrics[0].metric(
    "Documents", status.documents, f"{status.chunks} chunks", delta_color="off", delta_arrow="off", border=True
)
metrics[1].metric(
    "Adapter",
    "ready" if status.adapter else "not yet",
    adapter_summary(status),
    delta_color="off",
    delta_arrow="off",
    border=True,
)
metrics[2].metric(
    "Scenario questions", len(questions), "in eval.jsonl", delta_color="off", delta_arrow="off", border=True
)
st.caption(f"Data folder: `{status.data_dir}` · Scenario folder: `{scenario.path}`")
render_model_choice(scenario)
render_config_warnings()  # for admins, below the status: a demo opens on the modes, not on notes

st.header(escape_markdown(scenario.title))
st.write(escape_markdown(scenario.description))
if questions:
    st.subheader("Questions to try")
    st.caption("Click one to ask every mode at once on the Compare page.")
    for number, (question, label) in enumerate(questions_to_try(questions)):
        if st.button(
            f"{escape_markdown(question)} · *{label}*",
            key=f"try:{number}",
            icon=":material/view_column:",
            type="tertiary",
        ):
            ask_on_compare(question)
