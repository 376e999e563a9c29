"""The fine-tuning page's parts: the dataset and its report, settings and estimate, live jobs, the
adapter registry and the job history; plus the wait shown by the fine-tuned and hybrid pages."""

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.common.model_catalog import SMOLLM2
from core.common.scenario import Scenario
from core.jobs import get_job, list_jobs, request_cancel
from core.text.safe_text import escape_markdown
from core.training.adapters import ActiveAdapterError
from core.training.datasets import DatasetReport, inspect_dataset, load_chat_dataset, save_upload
from core.training.estimate import (
    current_tokens_per_s,
    duration_words,
    estimate_seconds,
    measured_tokens_per_s,
    time_left_words,
)
from core.training.train_config import TrainConfig, config_fields
from ui.access import admin_note, is_admin
from ui.resources import get_lab

STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/model_training:",
    "succeeded": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}
PREVIEW_EXAMPLES = 3


# --- dataset ---------------------------------------------------------------------------------
def choose_dataset(scenario: Scenario) -> Path | None:
    """The scenario's train.jsonl or an uploaded set (kept under DATA/datasets); None until there is one."""
    own = scenario.train_path.exists()
    sources = (["The scenario's train.jsonl"] if own else []) + (["Upload a JSONL file"] if is_admin() else [])
    if not sources:
        admin_note("upload training sets")
        return None
    source = st.radio("Training set", sources, horizontal=True, key=f"ft_source:{scenario.name}")
    if source.startswith("The scenario"):
        return scenario.train_path
    upload = st.file_uploader(
        'Chat fine-tuning lines (`{"messages": [...]}`), or `prompt`/`completion`, or `question`/`answer`',
        type=["jsonl", "json"],
        key=f"ft_upload:{scenario.name}",
    )
    if upload is None:
        return None
    return save_upload(upload.getvalue(), get_lab().settings.data_dir)


@st.cache_data(show_spinner="Checking the training set…", max_entries=32)
def _report(path: str, sha256: str, system_prompt: str, max_seq_len: int) -> DatasetReport:
    del sha256  # part of the cache key: the same path with new content is checked again
    dataset = load_chat_dataset(Path(path), system_prompt)
    return inspect_dataset(dataset, get_lab().engine.tokenizer, max_seq_len)


def dataset_report(path: Path, scenario: Scenario, max_seq_len: int) -> DatasetReport:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return _report(str(path), sha, scenario.system_prompt, max_seq_len)


def render_report(report: DatasetReport, path: Path, scenario: Scenario) -> None:
    st.markdown("**Validation report**")
    cells = st.columns(5)
    cells[0].metric(
        "Examples in the file",
        report.examples,
        help="Conversations in this file. How many training uses, after adding examples with sources and "
        "holding some out, is said under the settings.",
    )
    cells[1].metric("Tokens", f"{report.tokens:,}")
    cells[2].metric("Truncated", len(report.truncated), help=f"Longer than max_seq_len ({report.max_seq_len}).")
    cells[3].metric("Duplicate groups", len(report.duplicates))
    cells[4].metric("Errors", len(report.errors))
    if report.errors:
        st.error(
            f"{len(report.errors)} line(s) can't be used. Fix them and check again; nothing trains until then.",
            icon=":material/error:",
        )
        st.dataframe(
            pd.DataFrame({"Problem": [e.removeprefix(f"{path}:") for e in report.errors]}),
            hide_index=True,
            width="stretch",
        )
    if report.lengths:
        render_length_histogram(report.lengths, report.max_seq_len)
    if report.truncated:
        st.warning(
            f"{len(report.truncated)} example(s) exceed max_seq_len and will be cut (lines "
            f"{', '.join(map(str, report.truncated[:20]))}{'…' if len(report.truncated) > 20 else ''}).",
            icon=":material/content_cut:",
        )
    if report.duplicates:
        groups = "; ".join(", ".join(map(str, group)) for group in report.duplicates[:10])
        st.info(f"Identical examples on lines {groups}: they count twice in training.", icon=":material/content_copy:")
    dataset = load_chat_dataset(path, scenario.system_prompt)
    if dataset.examples:
        with st.expander(f"Preview: the first {min(PREVIEW_EXAMPLES, len(dataset.examples))} examples"):
            for example in dataset.examples[:PREVIEW_EXAMPLES]:
                st.caption(f"Line {example.line}")
                render_messages(example.messages)


def render_length_histogram(lengths: list[int], max_seq_len: int) -> None:
    """How long the examples are, in bins of a round width. The cut-off line is drawn only when some example
    comes near it: drawn far to the right, it squeezed every bar against the left edge."""
    longest = max(lengths)
    near_limit = longest > 0.8 * max_seq_len
    top = max(longest, max_seq_len) if near_limit else longest
    step = next(width for width in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10**9) if top / width <= 30)
    bars = (
        alt.Chart(pd.DataFrame({"tokens": lengths}))
        .mark_bar()
        .encode(
            alt.X(
                "tokens:Q", bin=alt.Bin(step=step), title="Length of the example (tokens)", axis=alt.Axis(format="d")
            ),
            alt.Y("count():Q", title="Examples", axis=alt.Axis(tickMinStep=1, format="d")),
        )
    )
    chart = bars
    if near_limit:
        limit = alt.Chart(pd.DataFrame({"limit": [max_seq_len]})).mark_rule(color="red").encode(x="limit:Q")
        chart = bars + limit
    st.altair_chart(chart.properties(height=220), width="stretch")
    if near_limit:
        st.caption(f"The red line is the longest an example may be ({max_seq_len} tokens); longer ones are cut.")
    else:
        st.caption(f"Every example is well under the longest one allowed ({max_seq_len} tokens): none is cut.")


def render_messages(messages: list[dict]) -> None:
    for message in messages:
        if message["role"] == "system":
            st.caption(f"System: {escape_markdown(message['content'])}")
            continue
        with st.chat_message(message["role"]):
            st.markdown(escape_markdown(message["content"]))


# --- settings and start --------------------------------------------------------------------------
def render_settings(scenario: Scenario) -> TrainConfig:
    """A form-free settings grid (values live in session state per scenario), each with one-line help."""
    defaults = TrainConfig()
    values = {}
    columns = st.columns(3)
    for index, (name, kind, default, text) in enumerate(config_fields()):
        if name == "max_steps":
            continue  # for quick runs from the command line and tests
        label = name.replace("_", " ").capitalize()
        key = f"ft_{name}:{scenario.name}"
        with columns[index % 3]:
            if kind is bool:
                values[name] = st.toggle(label, value=default, help=text, key=key)
            elif kind is int:
                values[name] = int(st.number_input(label, value=default, min_value=0, step=1, help=text, key=key))
            elif kind is float:
                fmt, step = ("%.0e", 1e-4) if name == "learning_rate" else ("%.2f", 0.05)
                values[name] = st.number_input(
                    label, value=default, min_value=0.0, step=step, format=fmt, help=text, key=key
                )
            else:
                values[name] = st.text_input(label, value=default, help=text, key=key)
    return TrainConfig(**{**asdict(defaults), **values})


@st.cache_data(show_spinner="Retrieving sources for context-aware examples…", max_entries=16)
def _context_preview(scenario_name: str, source: str, sha: str, kb_state: str, share: float, seed: int, max_len: int):
    del sha, kb_state  # cache key only
    lab = get_lab()
    scenario = lab.scenario(scenario_name)
    config = TrainConfig(context_share=share, seed=seed, max_seq_len=max_len)
    path, grounding = lab.prepare_training(scenario, config, Path(source))
    report = inspect_dataset(load_chat_dataset(path, scenario.system_prompt), lab.engine.tokenizer, max_len)
    return grounding, report


def training_plan(scenario: Scenario, source: Path, config: TrainConfig, report: DatasetReport):
    """(grounding report or None, the report of the set actually trained on) for the estimate."""
    if not config.context_aware:
        return None, report
    knowledge_base = get_lab().knowledge_base(scenario)
    kb_state = json.dumps([knowledge_base.settings.to_dict(), knowledge_base.manifest.current_shas()], sort_keys=True)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    return _context_preview(
        scenario.name, str(source), sha, kb_state, config.context_share, config.seed, config.max_seq_len
    )


def render_start(scenario: Scenario, source: Path, config: TrainConfig, report: DatasetReport) -> None:
    if not is_admin():
        admin_note("start training")
        return
    lab = get_lab()
    problems = config.problems()
    if problems or report.errors:
        for problem in problems:
            st.error(problem, icon=":material/error:")
        st.button("Start training", type="primary", icon=":material/model_training:", disabled=True)
        return
    grounding, trained = training_plan(scenario, source, config, report)
    if grounding:
        st.caption(f":material/join: Context-aware: {escape_markdown(grounding.summary())}")
        if grounding.grounded == 0:
            st.warning(
                "No example could be grounded (an empty knowledge base, or sources that never state the answers): "
                "the adapter will train on plain prompts only.",
                icon=":material/warning:",
            )
    st.markdown(example_counts(report.examples, trained.examples, config))
    running = [job for job in list_jobs(lab.settings, limit=20, kind="train") if job.active]
    engine = lab.engine
    measured = measured_tokens_per_s(lab.settings.data_dir, engine.device, engine.model_name, engine.parameters)
    rate, basis = current_tokens_per_s(measured, next((j.tokens_per_s for j in running if j.status == "running"), None))
    seconds = estimate_seconds(trained.lengths, config, rate)
    st.caption(
        f":material/timer: **{duration_words(seconds).capitalize()}** for {trained.tokens:,} tokens per epoch "
        f"× {config.epochs} epoch(s) at {rate:.0f} training tokens/s ({basis}); slower while the app answers "
        "questions, which go first."
    )
    if running:
        job = running[0]
        st.button("Start training", type="primary", icon=":material/model_training:", disabled=True)
        st.caption(
            f":material/hourglass_top: Job {job.id} is {job.status} ({time_left_words(job.eta_s)}): start another "
            "when it has finished, or cancel it above."
        )
        return
    if st.button("Start training", type="primary", icon=":material/model_training:"):
        try:
            job_id = lab.submit_training(scenario, config, source)
        except ValueError as error:
            st.error(str(error), icon=":material/error:")
            return
        st.toast(f"Training job {job_id} queued.", icon=":material/model_training:")
        st.rerun()


def example_counts(in_file: int, to_train: int, config: TrainConfig) -> str:
    """The one account of how many examples a run uses, in words: the file, what context-aware training
    adds, and the split between trained and held out (the adapter table's columns are the last two)."""
    held_out = config.held_out(to_train)
    added = to_train - in_file
    extra = (
        f" → **{to_train}** with {added} added (examples with retrieved sources, and declines)"
        if added > 0
        else f" → **{to_train}** after context-aware rewriting"
        if to_train != in_file
        else ""
    )
    return (
        f":material/dataset: **{in_file}** examples in the file{extra}: **{to_train - held_out}** to train on and "
        f"**{held_out}** held out to measure the validation loss."
    )


# --- live jobs -----------------------------------------------------------------------------------
@st.fragment(run_every=2)
def render_live_jobs(scenario: Scenario) -> None:
    """Queued and running jobs (all scenarios: they share one queue), refreshed every two seconds."""
    lab = get_lab()
    jobs = [j for j in list_jobs(lab.settings, limit=20, kind="train") if j.active]
    seen = st.session_state.setdefault("ft_live_jobs", set())
    finished = [job_id for job_id in seen if job_id not in {j.id for j in jobs}]
    if finished:  # a job ended since the last poll: redraw the page (adapters, history)
        seen.clear()
        st.rerun(scope="app")
    if not jobs:
        return
    for job in reversed(jobs):
        seen.add(job.id)
        with st.container(border=True):
            render_job_progress(job, scenario)


def render_job_progress(job: dict, scenario: Scenario) -> None:
    lab = get_lab()
    head, action = st.columns([5, 1], vertical_alignment="center")
    where = "" if job.scenario == scenario.name else f" · scenario {job.scenario}"
    head.markdown(f"{STATUS_ICONS[job.status]} **Job {job.id}** · {job.status}{escape_markdown(where)}")
    if is_admin() and action.button("Cancel", icon=":material/stop:", key=f"cancel-{job.id}"):
        request_cancel(lab.settings, job.id)
        st.toast(f"Cancelling job {job.id}…")
    if job.status == "queued" or not job.total_steps:
        st.progress(0.0, text=escape_markdown(job.phase or "Waiting for its turn"))
        return
    done = job.step / job.total_steps
    phase = job.phase or "Training"
    st.progress(
        done,
        text=f"{phase} · step {job.step} of {job.total_steps} · {time_left_words(job.eta_s)}",
    )
    loss = f"loss {job.loss:.3f}" if job.loss is not None else ""
    val = f" · validation loss {job.val_loss:.3f}" if job.val_loss is not None else ""
    st.caption(f"{loss}{val} · {job.tokens_per_s or 0:.0f} training tokens/s")
    render_loss_chart(job.history)


def render_loss_chart(history: list[dict]) -> None:
    points = [{"step": p["step"], "loss": p["loss"], "curve": "training"} for p in history]
    points += [{"step": p["step"], "loss": p["val_loss"], "curve": "validation"} for p in history if p.get("val_loss")]
    if len(points) < 2:
        return
    chart = (
        alt.Chart(pd.DataFrame(points))
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="Training step", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("loss:Q", title="Loss (lower is better)"),
            color=alt.Color("curve:N", title=None),
        )
        .properties(height=200)
    )
    st.altair_chart(chart, width="stretch")


# --- adapters ------------------------------------------------------------------------------------
def render_adapters(scenario: Scenario) -> None:
    lab = get_lab()
    adapters = sorted(lab.adapters(scenario), key=lambda a: a.metadata.get("created_at", ""), reverse=True)
    for message in st.session_state.pop("ft_adapter_message", []):
        st.success(message, icon=":material/check:")
    others = lab.other_models_adapters(scenario)
    if others:
        names = ", ".join(sorted({escape_markdown(a.base_model or "an unknown model") for a in others}))
        st.caption(
            f":material/visibility_off: {len(others)} adapter(s) of this scenario were trained on {names}, not on "
            f"{escape_markdown(lab.model_label)}, the model answering now: an adapter only fits the model it was "
            "trained on, so they are not offered. Switch models on the overview to use them."
        )
    if not adapters:
        st.info(
            f"No adapter yet for {escape_markdown(lab.model_label)} in this scenario. Train one in the Train tab.",
            icon=":material/info:",
        )
        return
    active = lab.active_adapter(scenario)
    rows = []
    for adapter in adapters:
        meta = adapter.metadata
        forgetting = meta.get("forgetting")
        rows.append(
            {
                "Active": active is not None and adapter.name == active.name,
                "Adapter": adapter.name,
                "Created": meta.get("created_at", ""),
                "Dataset": Path(meta.get("dataset", "")).name,
                "Trained on (examples)": meta.get("examples"),
                "Held out": meta.get("val_examples"),
                "Context-aware": bool(meta.get("config", {}).get("context_aware") and meta.get("context")),
                "Rank": meta.get("config", {}).get("rank"),
                "Epochs": meta.get("config", {}).get("epochs"),
                "Loss": meta.get("final_loss"),
                "Val loss": meta.get("final_val_loss"),
                "Minutes": round((meta.get("duration_s") or 0) / 60, 1),
                "General knowledge": forgetting_words(forgetting) if forgetting else "",
            }
        )
    admin = is_admin()
    st.markdown(f"**Adapters** · select one to see its details{', activate, rename or delete it' if admin else ''}")
    picked = st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"ft_adapters:{scenario.name}",
    )
    if not admin:
        admin_note("activate, rename or delete adapters")
    if picked.selection.rows:
        render_adapter_details(scenario, adapters[picked.selection.rows[0]], active)


def render_adapter_details(scenario: Scenario, adapter, active) -> None:
    meta = adapter.metadata
    is_active = active is not None and adapter.name == active.name
    st.subheader(escape_markdown(adapter.name))
    st.caption(
        f"Base model {escape_markdown(str(meta.get('base_model')))} · dataset "
        f"{escape_markdown(str(meta.get('dataset')))} (sha256 {str(meta.get('dataset_sha256', ''))[:12]}…) · "
        f"{meta.get('train_tokens', 0):,} training tokens at {meta.get('tokens_per_s', 0)} tokens/s"
    )
    if is_admin():
        render_adapter_actions(scenario, adapter, is_active)
    render_loss_chart(meta.get("loss_history", []))
    context = meta.get("context")
    if context:
        st.caption(
            f"Context-aware: {context.get('grounded', 0)} grounded examples ({context.get('supported', 0)} answered "
            f"from sources, {context.get('declines', 0)} declines), {len(context.get('left_plain', []))} left plain."
        )
    render_forgetting(meta.get("forgetting"))
    with st.expander("Settings and metadata"):
        st.json({k: v for k, v in meta.items() if k not in ("loss_history", "forgetting")}, expanded=False)


def render_adapter_actions(scenario: Scenario, adapter, is_active: bool) -> None:
    lab = get_lab()
    activate, rename, delete = st.columns(3)
    with activate:
        if is_active:
            st.success("Active: the fine-tuned and hybrid modes use it.", icon=":material/check:")
        elif st.button("Make active", icon=":material/radio_button_checked:", key=f"activate:{adapter.name}"):
            lab.activate_adapter(scenario, adapter.name)
            st.session_state["ft_adapter_message"] = [f"{adapter.name} is now active."]
            st.rerun()
    with rename, st.form(f"rename:{adapter.name}", border=False):
        new_name = st.text_input("New name", value=adapter.name, max_chars=64)
        if st.form_submit_button("Rename", icon=":material/edit:") and new_name != adapter.name:
            try:
                lab.rename_adapter(scenario, adapter.name, new_name.strip())
            except ValueError as error:
                st.error(str(error))
            else:
                st.session_state["ft_adapter_message"] = [f"Renamed {adapter.name} to {new_name.strip()}."]
                st.rerun()
    with delete:
        confirmed = True
        if is_active:
            confirmed = st.checkbox(
                "Delete the active adapter (the newest other one takes over)", key=f"confirm:{adapter.name}"
            )
        if st.button("Delete", icon=":material/delete:", disabled=not confirmed, key=f"delete:{adapter.name}"):
            try:
                now_active = lab.delete_adapter(scenario, adapter.name, confirm_active=confirmed)
            except (ActiveAdapterError, ValueError) as error:
                st.error(str(error))
            else:
                after = f" {now_active.name} is active now." if is_active and now_active else ""
                st.session_state["ft_adapter_message"] = [f"Deleted {adapter.name}.{after}"]
                st.rerun()


def forgetting_words(forgetting: dict) -> str:
    """The forgetting check in words: general-knowledge questions right after training, and before."""
    return (
        f"{forgetting['adapter_correct']} of {forgetting['questions']} right "
        f"(the base model: {forgetting['base_correct']})"
    )


def render_forgetting(forgetting: dict | None) -> None:
    if not forgetting:
        return
    base, tuned, total = forgetting["base_correct"], forgetting["adapter_correct"], forgetting["questions"]
    st.metric(
        "General knowledge (forgetting check)",
        f"{tuned} of {total} right with the adapter",
        delta=f"{tuned - base:+d} against the base model ({base} of {total})",
        delta_color="normal" if tuned >= base else "inverse",
        help="Questions the Lab ships (core/training/data/general_knowledge.jsonl), answered greedily with and without the adapter.",
    )
    table = pd.DataFrame(
        {
            "Question": [a["question"] for a in forgetting["answers"]],
            "Base": [("✓ " if a["base_correct"] else "✗ ") + a["base"] for a in forgetting["answers"]],
            "Adapter": [("✓ " if a["adapter_correct"] else "✗ ") + a["adapter"] for a in forgetting["answers"]],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")


# --- history -------------------------------------------------------------------------------------
def render_history(scenario: Scenario) -> None:
    jobs = list_jobs(get_lab().settings, scenario.name, kind="train")
    if not jobs:
        st.info("No training job yet for this scenario.", icon=":material/info:")
        return
    table = pd.DataFrame(
        {
            "Job": [j.id for j in jobs],
            "Status": [j.status for j in jobs],
            "Started": [_clock(j.started_at or j.created_at) for j in jobs],
            "Minutes": [round(((j.finished_at or time.time()) - (j.started_at or j.created_at)) / 60, 1) for j in jobs],
            "Steps": [f"{j.step}/{j.total_steps}" for j in jobs],
            "Model": [j.model or SMOLLM2.name for j in jobs],
            "Dataset": [Path(j.source_dataset or j.dataset or "").name for j in jobs],
            "Adapter": [j.adapter or "" for j in jobs],
            "Message": [j.message or j.phase or "" for j in jobs],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")


# --- the wait on the fine-tuned and hybrid pages ---------------------------------------------------
def render_adapter_wait(scenario: Scenario) -> None:
    """Shown by the fine-tuned and hybrid pages until the scenario has an adapter; reruns the page when it does."""
    lab = get_lab()
    st.info(
        "This mode needs the model's fine-tuned version for this scenario. It is being trained in the "
        "background: reloading the page or chatting in other modes does not disturb it.",
        icon=":material/model_training:",
    )
    st.page_link("pages/finetuning.py", label="Open the fine-tuning studio", icon=":material/tune:")
    job = lab.status(scenario).job
    if job is None or job.status in ("failed", "cancelled", "succeeded"):
        if job and job.status != "succeeded":
            st.error(f"The last training run {job.status}: {job.message}")
        if not is_admin():
            admin_note("start training")
        elif st.button("Train the adapter now", type="primary"):
            lab.submit_training(scenario)
            st.rerun()
        return
    _wait_for(job.id)


@st.fragment(run_every=2)
def _wait_for(job_id: int) -> None:
    lab = get_lab()
    job = get_job(lab.settings, job_id)
    if job.status == "succeeded":
        st.rerun(scope="app")
    if not job.active:
        st.error(f"Training {job.status}: {job.message}")
        return
    render_job_progress(job, lab.scenario(job.scenario))


def _clock(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else ""
