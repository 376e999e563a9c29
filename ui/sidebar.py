"""The sidebar every page shares: scenario picker and a compact status."""

import streamlit as st

from ui.resources import current_scenario, get_lab


def render_sidebar() -> None:
    lab = get_lab()
    scenarios = {s.name: s for s in lab.scenarios()}
    with st.sidebar:
        current = current_scenario()
        st.selectbox(
            "Scenario",
            options=list(scenarios),
            format_func=lambda name: scenarios[name].title,
            key="scenario",
        )
        status = lab.status(current)
        st.caption(f"**Model** {status['model']} · {status['device']} · {status['dtype']}")
        st.caption(f"**Knowledge base** {status['documents']} documents · {status['chunks']} chunks")
        st.caption(f"**Adapter** {adapter_summary(status)}")


def adapter_summary(status: dict) -> str:
    if status["adapter"]:
        return status["adapter"]
    job = status["job"]
    if job and job["status"] in ("queued", "running"):
        return f"training ({job['step']}/{job['total_steps'] or '?'} steps)"
    if job and job["status"] in ("failed", "cancelled"):
        return f"none — last training {job['status']}"
    return "none yet"
