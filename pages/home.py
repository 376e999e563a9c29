"""Overview: what the four modes are, the Lab's status, and questions to try."""

import streamlit as st

from core.common.scenario import load_eval_questions, questions_to_try
from core.common.vocabulary import MODE_LABELS, MODES
from core.text.safe_text import escape_markdown
from ui.access import is_admin, render_config_warnings
from ui.chat import MODE_DETAILS, MODE_HELP
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
        st.subheader(f"{MODE_ICONS[mode]} {MODE_LABELS[mode]}", help=MODE_DETAILS[mode])
        st.write(MODE_HELP[mode])
        st.page_link(f"pages/{mode}.py", label=f"Chat with {MODE_LABELS[mode]}", icon=":material/chat:")

st.header("Status")
if status.remote:
    st.markdown(f"**Model** {escape_markdown(status.model)}, answering from a model server")
else:
    where = "a graphics card" if status.device == "cuda" else "this computer's processor"
    st.markdown(f"**Model** {status.model}, running on {where}")
metrics = st.columns(3)
metrics[0].metric(
    "Documents", status.documents, "in the knowledge base", delta_color="off", delta_arrow="off", border=True
)
metrics[1].metric(
    "Fine-tuned version",
    "ready" if status.adapter else "not yet",
    adapter_summary(status),
    delta_color="off",
    delta_arrow="off",
    border=True,
)
metrics[2].metric(
    "Test questions", len(questions), "with known answers", delta_color="off", delta_arrow="off", border=True
)
with st.expander("Technical details", icon=":material/info:"):
    model = (
        f"{status.model} on {status.server}" if status.remote else f"{status.model} on {status.device} ({status.dtype})"
    )
    window = f", context window {status.context_window} tokens" if status.context_window else ""
    st.caption(
        f"Model {escape_markdown(model)}{window} · {status.chunks} chunks in the knowledge base · "
        f"active adapter {escape_markdown(status.adapter or 'none')} · {len(questions)} questions in eval.jsonl"
    )
    if is_admin():  # where the server keeps its files: nothing a visitor needs
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
