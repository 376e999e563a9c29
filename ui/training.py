"""Live progress of the scenario's background adapter training, polled from SQLite."""

import streamlit as st

from core.jobs import get_job, request_cancel, submit_training
from core.scenario import Scenario
from ui.resources import get_lab


def render_adapter_wait(scenario: Scenario) -> None:
    """Shown by the fine-tuned and hybrid pages until the scenario has an adapter; reruns the page when it does."""
    lab = get_lab()
    st.info(
        "This mode needs a fine-tuned LoRA adapter for this scenario. It is being trained in the background "
        "(a separate process: reloading the page or chatting in other modes does not disturb it)."
    )
    job = lab.status(scenario)["job"]
    if job is None or job["status"] in ("failed", "cancelled"):
        if job:
            st.error(f"The last training run {job['status']}: {job['message']}")
        if st.button("Train the adapter now", type="primary"):
            submit_training(lab.settings, scenario.path)
            st.rerun()
        return
    _progress(job["id"])


@st.fragment(run_every=2)
def _progress(job_id: int) -> None:
    lab = get_lab()
    job = get_job(lab.settings, job_id)
    if job["status"] == "succeeded":
        st.rerun(scope="app")
    if job["status"] not in ("queued", "running"):
        st.error(f"Training {job['status']}: {job['message']}")
        return
    if job["status"] == "queued" or not job["total_steps"]:
        st.progress(0.0, text="Waiting to start (loading the model, or another training job runs first)…")
        return
    if st.button("Cancel training", icon=":material/stop:", key=f"cancel-{job_id}"):
        request_cancel(lab.settings, job_id)
    done = job["step"] / job["total_steps"]
    st.progress(done, text=f"Step {job['step']} of {job['total_steps']} · about {job['eta_s']:.0f} s left")
    loss = f"loss {job['loss']:.3f}" if job["loss"] is not None else ""
    st.caption(f"{loss} · {job['tokens_per_s']:.0f} training tokens/s")
    if len(job["history"]) > 1:
        st.line_chart({"loss": [point["loss"] for point in job["history"]]}, height=160)
