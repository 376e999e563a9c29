"""Overview: what the four modes are, the Lab's status, and questions to try."""

import streamlit as st

from core.safe_text import escape_markdown
from core.scenario import load_eval_questions
from ui.chat import MODE_HELP, MODE_ICONS
from ui.resources import current_scenario, get_lab
from ui.sidebar import adapter_summary

lab = get_lab()
scenario = current_scenario()
status = lab.status(scenario)

st.title("🧪 RAG vs Fine-Tuning Lab")
st.markdown(
    "One small language model, four ways to answer. Ask the same question in each mode and see what "
    "retrieval and fine-tuning each change — facts, freshness, style and honesty."
)
columns = st.columns(4, border=True)
for column, (mode, label, page) in zip(
    columns,
    [("base", "Base", "pages/base.py"), ("rag", "RAG", "pages/rag.py"),
     ("finetuned", "Fine-tuned", "pages/finetuned.py"), ("hybrid", "Hybrid", "pages/hybrid.py")],
):
    with column:
        st.subheader(f"{MODE_ICONS[mode]} {label}")
        st.write(MODE_HELP[mode])
        st.page_link(page, label=f"Chat with {label}", icon=":material/chat:")

st.header("Status")
metrics = st.columns(4)
metrics[0].metric("Model", status["model"], f"{status['device']} · {status['dtype']}", delta_color="off")
metrics[1].metric("Documents", status["documents"], f"{status['chunks']} chunks", delta_color="off")
metrics[2].metric("Adapter", "ready" if status["adapter"] else "not yet", adapter_summary(status), delta_color="off")
metrics[3].metric("Context window", f"{status['context_window']} tokens")
st.caption(f"Data folder: `{status['data_dir']}` · Scenario folder: `{scenario.path}`")

st.header(escape_markdown(scenario.title))
st.write(escape_markdown(scenario.description))
questions = load_eval_questions(scenario)
if questions:
    st.subheader("Questions to try")
    kinds = {"answerable": "in the docs", "fresh": "changed since training", "unanswerable": "not in the docs", "style": "house style"}
    for kind, label in kinds.items():
        sample = [q["question"] for q in questions if q["kind"] == kind][:2]
        for question in sample:
            st.markdown(f"- {escape_markdown(question)} · *{label}*")
