"""The evaluation page's parts: start a run, watch it, read a run (chart, questions, failures, exports),
compare two runs with bootstrap intervals, and the decision card."""

import altair as alt
import pandas as pd
import streamlit as st

from core.common.export import csv_text, json_text
from core.common.scenario import EVAL_KINDS, Scenario, ScenarioError
from core.common.vocabulary import ADAPTER_MODES, MODE_LABELS, MODES
from core.evaluation.arena import list_votes
from core.evaluation.decision import CRITERIA, DEFAULT_WEIGHTS, MAX_WEIGHT, WEIGHT_STEP, Prices, recommend
from core.evaluation.eval_store import RunInfo, delete_run, list_runs, load_run, rename_run
from core.evaluation.judge import configured_judge, vote_agreement
from core.evaluation.run_compare import compare_runs
from core.evaluation.runs import FAILURE_CELLS, EvalConfig, estimated_run_seconds, flat_rows, select_questions
from core.jobs import list_jobs, request_cancel
from core.text.safe_text import escape_markdown
from ui.access import admin_note, current_mode, is_admin
from ui.resources import get_lab

METRIC_LABELS = {
    "accuracy": "Accuracy",
    "freshness": "Freshness",
    "refusal": "Refusal",
    "wrongly_declined": "Wrongly declined",
    "style": "Style",
    "groundedness": "Groundedness",
    "retrieval_hit_rate": "Retrieval hit rate",
    "judge_accuracy": "Judge accuracy",
}
METRIC_HELP = {
    "accuracy": "Answerable, fresh and style questions whose answer matches every must_include pattern without declining.",
    "freshness": "Accuracy on the fresh questions only: facts that changed after the training set was written.",
    "refusal": "Unanswerable questions the mode declined instead of answering.",
    "wrongly_declined": "Questions with an answer that the mode declined anyway (lower is better): a mode that "
    "declines everything has perfect refusal and 1.0 here.",
    "style": "Answers matching the scenario's style_regex.",
    "groundedness": "Claim sentences of RAG and hybrid answers that a retrieved passage supports (embedding "
    "similarity, with every figure present in the sources).",
    "retrieval_hit_rate": "Questions whose retrieved passages contain the expected facts.",
    "judge_accuracy": "Answers the LLM judge graded as matching the reference.",
}
FAILURE_LABELS = {
    "retrieved_and_correct": "Retrieved, and correct",
    "retrieved_but_wrong": "Retrieved, but wrong (the model missed it)",
    "missed_but_correct": "Missed, but correct (known anyway)",
    "missed_and_wrong": "Missed, and wrong (retrieval failed)",
}
MARKS = {True: "✓", False: "✗", None: "–"}


# --- start and watch ---------------------------------------------------------------------------------
def render_start(scenario: Scenario) -> None:
    lab = get_lab()
    if current_mode() == "demo" and not is_admin():  # a run takes every core for minutes: the presenter's call
        admin_note("start evaluation runs in a demo")
        return
    try:
        questions = select_questions(scenario, EvalConfig())
    except ScenarioError as error:
        st.error(f"The scenario's eval.jsonl has problems:\n\n{escape_markdown(str(error))}", icon=":material/error:")
        return
    if not questions:
        st.info(
            f"This scenario has no evaluation questions yet: add an `eval.jsonl` to {escape_markdown(str(scenario.path))} "
            "(one JSON object per line: id, question, kind, must_include, reference).",
            icon=":material/info:",
        )
        return
    adapters = lab.adapters(scenario)
    active = lab.active_adapter(scenario)
    available = [m for m in MODES if m not in ADAPTER_MODES or adapters]
    with st.form(f"eval_start:{scenario.name}", border=True):
        modes = st.multiselect(
            "Modes",
            available,
            default=available,
            format_func=MODE_LABELS.get,
            help="All chosen modes answer each question in one batch, so four modes cost little more than one.",
        )
        if len(available) < len(MODES):
            st.caption("Fine-tuned and hybrid need an adapter: train one on the Fine-tuning page.")
        names = [a.name for a in adapters]
        adapter = None
        if names:
            adapter = st.selectbox(
                "Adapter for fine-tuned and hybrid",
                names,
                index=names.index(active.name) if active and active.name in names else 0,
            )
        counts = {kind: sum(q["kind"] == kind for q in questions) for kind in EVAL_KINDS}
        kinds = st.multiselect(
            "Question kinds",
            [k for k in EVAL_KINDS if counts[k]],
            default=[k for k in EVAL_KINDS if counts[k]],
            format_func=lambda k: f"{k} ({counts[k]})",
        )
        limit = st.number_input(
            "Only the first N questions (0: all)", min_value=0, max_value=len(questions), value=0, step=1
        )
        label = st.text_input("Name of the run", max_chars=80, placeholder="e.g. after adding the 2026 price list")
        judge = configured_judge(lab.settings)
        use_judge = st.checkbox(f"Also grade with the judge ({escape_markdown(judge.name)})", True) if judge else False
        chosen = [q for q in questions if q["kind"] in kinds][: int(limit) or None]
        st.caption(f":material/timer: {_estimate(scenario, len(chosen), len(modes))}")
        submitted = st.form_submit_button("Start evaluation", type="primary", icon=":material/play_arrow:")
    if submitted:
        if not modes or not chosen:
            st.error("Choose at least one mode and one kind of question.", icon=":material/error:")
            return
        config = EvalConfig(
            modes=tuple(m for m in MODES if m in modes),
            adapter=adapter if any(m in ADAPTER_MODES for m in modes) else None,
            kinds=tuple(kinds),
            limit=int(limit) or None,
            label=label,
            use_judge=use_judge,
        )
        job_id = lab.submit_evaluation(scenario, config)
        st.toast(f"Evaluation job {job_id} queued.", icon=":material/play_arrow:")
        st.rerun()


def _estimate(scenario: Scenario, questions: int, modes: int) -> str:
    """From this scenario's last saved run on this machine, per question and per mode."""
    runs = list_runs(get_lab().settings.data_dir, scenario.name)
    for run in runs:
        result = load_run(get_lab().settings.data_dir, run.id)
        if result and result.get("wall_s") and result["questions"]:
            per_question = result["wall_s"] / len(result["questions"])
            seconds = estimated_run_seconds(per_question, len(result["modes"]), questions, modes)
            return (
                f"About {_duration(seconds)} for {questions} questions, going by run "
                f"#{run.id} on this machine ({per_question:.0f} s per question for {len(result['modes'])} modes)."
            )
    return f"{questions} questions; the first run measures how long one takes here (roughly 10–30 s per question)."


@st.fragment(run_every=2)
def render_live_runs(scenario: Scenario) -> None:
    """Queued and running evaluation jobs, refreshed every two seconds; the page redraws when one ends."""
    lab = get_lab()
    jobs = [j for j in list_jobs(lab.settings, scenario.name, limit=20, kind="eval") if j.active]
    seen = st.session_state.setdefault("eval_live_jobs", set())
    finished = [job_id for job_id in seen if job_id not in {j.id for j in jobs}]
    if finished:
        seen.clear()
        st.rerun(scope="app")
    training_busy = any(j.active for j in list_jobs(lab.settings, limit=5, kind="train"))
    for job in reversed(jobs):
        seen.add(job.id)
        with st.container(border=True):
            head, action = st.columns([5, 1], vertical_alignment="center")
            head.markdown(f":material/science: **Evaluation job {job.id}** · {job.status}")
            if is_admin() and action.button("Cancel", icon=":material/stop:", key=f"cancel-eval-{job.id}"):
                request_cancel(lab.settings, job.id)
                st.toast(f"Cancelling job {job.id}…")
            phase = job.phase or "Waiting for its turn"
            if job.status == "queued" and training_busy:
                phase += " (a training job is using the machine)"
            done = job.step / job.total_steps if job.total_steps else 0.0
            eta = f" · about {_duration(job.eta_s)} left" if job.eta_s else ""
            st.progress(done, text=escape_markdown(phase) + eta)


def render_recent_failures(scenario: Scenario) -> None:
    """The last evaluation job, when it failed: why (saved runs are untouched)."""
    jobs = list_jobs(get_lab().settings, scenario.name, limit=1, kind="eval")
    if jobs and jobs[0].status in ("failed", "cancelled"):
        job = jobs[0]
        shown = st.warning if job.status == "cancelled" else st.error
        shown(
            f"Evaluation job {job.id} {job.status}: {escape_markdown(job.message or '')}",
            icon=":material/info:",
        )


# --- one run -----------------------------------------------------------------------------------------
def pick_run(scenario: Scenario, runs: list[RunInfo], key: str, label: str = "Run", index: int = 0) -> dict | None:
    if not runs:
        return None
    picked = st.selectbox(label, runs, index=min(index, len(runs) - 1), format_func=lambda r: r.title, key=key)
    return load_run(get_lab().settings.data_dir, picked.id)


def render_run(run: dict) -> None:
    settings = run["settings"]
    retrieval = settings.get("retrieval", {})
    st.caption(
        f"{settings['questions']} questions · model {escape_markdown(settings['model'])}"
        + (f" ({escape_markdown(settings['precision'])})" if settings.get("precision") else "")
        + " · adapter "
        f"{escape_markdown(settings.get('adapter') or 'none')} · top-{retrieval.get('k')} retrieval, minimum score "
        f"{retrieval.get('min_score')} · {settings['documents']} documents · greedy, at most "
        f"{settings['decoding']['max_new_tokens']} new tokens · {run.get('wall_s', 0):.0f} s in all"
        + (f" · judged by {escape_markdown(settings['judge'])}" if settings.get("judge") else "")
    )
    render_metrics(run)
    render_questions(run)
    render_failures(run)
    render_exports(run)
    render_judge_agreement(run)
    render_run_admin(run)


def render_metrics(run: dict) -> None:
    modes = list(run["modes"])
    metrics = [m for m in METRIC_LABELS if any(run["modes"][mode].get(m) is not None for mode in modes)]
    points = [
        {"metric": METRIC_LABELS[m], "mode": MODE_LABELS[mode], "value": run["modes"][mode][m]}
        for m in metrics
        for mode in modes
        if run["modes"][mode].get(m) is not None
    ]
    order = [MODE_LABELS[m] for m in modes]
    chart = (
        alt.Chart(pd.DataFrame(points))
        .mark_bar()
        .encode(
            x=alt.X("metric:N", title=None, sort=[METRIC_LABELS[m] for m in metrics], axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("mode:N", sort=order),
            y=alt.Y("value:Q", title="share", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=alt.Color("mode:N", sort=order, title="Mode"),
            tooltip=["mode", "metric", alt.Tooltip("value:Q", format=".0%")],
        )
        .properties(height=320)
    )
    st.altair_chart(chart, width="stretch")
    table = {
        MODE_LABELS[mode]: {
            **{METRIC_LABELS[m]: _percent(run["modes"][mode][m]) for m in metrics},
            "Latency p50": _seconds(run["modes"][mode]["latency_p50_s"]),
            "Latency p95": _seconds(run["modes"][mode]["latency_p95_s"]),
            "Prompt tokens / answer": _count(run["modes"][mode]["prompt_tokens"]),
            "Completion tokens / answer": _count(run["modes"][mode]["completion_tokens"]),
        }
        for mode in modes
    }
    st.dataframe(pd.DataFrame(table), width="stretch")
    with st.expander("What each metric means, and the figures per kind of question", icon=":material/help:"):
        for m in metrics:
            st.markdown(f"- **{METRIC_LABELS[m]}**: {METRIC_HELP[m]}")
        st.markdown("- **Latency** is measured with all modes in one batch; a mode asked alone answers faster.")
        by_kind = [
            {"Mode": MODE_LABELS[mode], "Kind": kind, **{METRIC_LABELS[m]: _percent(v) for m, v in values.items()}}
            for mode in modes
            for kind, values in run["modes"][mode]["by_kind"].items()
        ]
        frame = pd.DataFrame(by_kind).replace("–", None).dropna(axis=1, how="all").fillna("–")
        st.dataframe(frame, hide_index=True, width="stretch")


def render_questions(run: dict) -> None:
    st.subheader("Every question", divider="gray")
    modes = list(run["modes"])
    kinds = sorted({q["kind"] for q in run["questions"]})
    kind_col, filter_col = st.columns([1, 2])
    kind = kind_col.selectbox("Kind", ["all"] + kinds, key=f"eval_kind:{run['run_id']}")
    disagree = filter_col.checkbox("Only questions where the modes disagree", key=f"eval_disagree:{run['run_id']}")
    rows = []
    for question, flat in zip(run["questions"], flat_rows(run), strict=True):
        marks = [question["answers"][m]["passed"] for m in modes]
        if (kind != "all" and question["kind"] != kind) or (disagree and len(set(marks)) < 2):
            continue
        row = {"ID": question["id"], "Kind": question["kind"], "Question": question["question"]}
        for mode in modes:
            row[MODE_LABELS[mode]] = f"{MARKS[flat[f'{mode} pass']]} {flat[f'{mode} answer']}"
        rows.append(row)
    if not rows:
        st.info("No question matches these filters.", icon=":material/filter_alt:")
        return
    columns = {MODE_LABELS[m]: st.column_config.TextColumn(width="large") for m in modes}
    height = min(420, 35 * (len(rows) + 1) + 3)  # no empty rows under a short table
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config=columns, height=height)
    st.caption("✓ correct (or, for unanswerable questions, declined) · ✗ wrong · – not graded")


def render_failures(run: dict) -> None:
    if not run.get("failures"):
        return
    st.subheader("Where retrieval-augmented answers went wrong", divider="gray")
    st.caption(
        "For each answerable question: did retrieval bring back a passage with the expected facts, and was the answer "
        "correct? “Retrieved but wrong” is the model's fault; “missed” is retrieval's (try k or chunk size on the "
        "Knowledge base page)."
    )
    columns = st.columns(len(run["failures"]))
    for column, (mode, cells) in zip(columns, run["failures"].items(), strict=True):
        with column:
            st.markdown(f"**{MODE_LABELS[mode]}**")
            total = sum(cells.values()) or 1
            st.dataframe(
                pd.DataFrame(
                    {
                        "Outcome": [FAILURE_LABELS[c] for c in FAILURE_CELLS],
                        "Questions": [cells[c] for c in FAILURE_CELLS],
                        "Share": [_percent(cells[c] / total) for c in FAILURE_CELLS],
                    }
                ),
                hide_index=True,
                width="stretch",
            )


def render_exports(run: dict) -> None:
    name = f"eval-{run['scenario']}-run{run['run_id']}"
    csv_column, json_column = st.columns(2)
    csv_column.download_button(
        "Download CSV (one row per question)",
        csv_text(flat_rows(run)),
        file_name=f"{name}.csv",
        mime="text/csv",
        icon=":material/download:",
        width="stretch",
    )
    json_column.download_button(
        "Download JSON (the whole run)",
        json_text({k: v for k, v in run.items() if k not in ("run_id", "label")}),
        file_name=f"{name}.json",
        mime="application/json",
        icon=":material/download:",
        width="stretch",
    )


def render_judge_agreement(run: dict) -> None:
    lab = get_lab()
    judge = configured_judge(lab.settings)
    votes = list_votes(lab.settings.data_dir, run["scenario"])
    if judge is None or not votes:
        return
    key = f"judge_agreement:{run['scenario']}"
    if st.button(f"Check the judge against {len(votes)} arena votes", icon=":material/gavel:"):
        with st.spinner("Asking the judge…"):
            st.session_state[key] = vote_agreement(judge, votes)
    result = st.session_state.get(key)
    if result and result["agreement"] is not None:
        st.metric(
            "Judge agrees with the voters",
            _percent(result["agreement"]),
            help=f"{result['agreed']} of {result['judged']} decided votes (ties and “all bad” left out).",
        )


def render_run_admin(run: dict) -> None:
    if not is_admin():
        admin_note("rename or delete runs")
        return
    data_dir = get_lab().settings.data_dir
    with st.expander("Rename or delete this run", icon=":material/edit:"):
        with st.form(f"rename_run:{run['run_id']}", border=False):
            label = st.text_input("Name", value=run["label"], max_chars=80)
            if st.form_submit_button("Rename"):
                try:
                    rename_run(data_dir, run["run_id"], label)
                except ValueError as error:
                    st.error(str(error))
                else:
                    st.rerun()
        if st.button("Delete this run", icon=":material/delete:", key=f"delete_run:{run['run_id']}"):
            delete_run(data_dir, run["run_id"])
            st.rerun()


# --- two runs ----------------------------------------------------------------------------------------
def render_comparison(scenario: Scenario, runs: list[RunInfo]) -> None:
    if len(runs) < 2:
        st.info(
            "Two saved runs are needed: change something (documents, adapter, settings) and run again.",
            icon=":material/info:",
        )
        return
    left, right = st.columns(2)
    with left:
        before = pick_run(scenario, runs, f"eval_before:{scenario.name}", "Before", index=1)
    with right:
        after = pick_run(scenario, runs, f"eval_after:{scenario.name}", "After", index=0)
    if before["run_id"] == after["run_id"]:
        st.info("Pick two different runs.", icon=":material/info:")
        return
    changes = _changes(before["run_id"], after["run_id"])
    if not changes:
        st.info("These runs share no mode.", icon=":material/info:")
        return
    rows = [
        {
            "Mode": MODE_LABELS[c["mode"]],
            "Metric": METRIC_LABELS[c["metric"]],
            "Before": _percent(c["before"]),
            "After": _percent(c["after"]),
            "Change": f"{c['difference'] * 100:+.0f} pts",
            "95% interval": f"{c['ci95_low'] * 100:+.0f} to {c['ci95_high'] * 100:+.0f} pts",
            "Real?": "yes" if c["real"] else "not sure",
        }
        for c in changes
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    paired = changes[0]["paired"]
    st.caption(
        "Bootstrap over questions (2,000 resamples): a change is real when its 95% interval leaves out zero. "
        + (
            "Both runs asked the same questions, so they are resampled together (paired)."
            if paired
            else "The runs asked different questions, so each is resampled on its own; intervals are wider."
        )
    )


@st.cache_data(max_entries=32, show_spinner="Bootstrapping…")
def _changes(before_id: int, after_id: int) -> list[dict]:
    data_dir = get_lab().settings.data_dir
    return [c.to_dict() for c in compare_runs(load_run(data_dir, before_id), load_run(data_dir, after_id))]


# --- the decision card ---------------------------------------------------------------------------------
def render_decision(run: dict) -> None:
    st.caption(
        "Set how much each thing matters to you (0: not at all). The card weighs this run's measured numbers; "
        "nothing is re-run."
    )
    weights = {}
    columns = st.columns(4)
    for number, (criterion, label) in enumerate(CRITERIA.items()):
        weights[criterion] = columns[number % 4].slider(
            label,
            0.0,
            float(MAX_WEIGHT),
            float(DEFAULT_WEIGHTS[criterion]),
            WEIGHT_STEP,
            format="%.1f",
            key=f"weight:{criterion}",
        )
    with st.expander("Prices used for cost", icon=":material/payments:"):
        prompt_col, completion_col = st.columns(2)
        defaults = Prices()
        prices = Prices(
            prompt_col.number_input("$ per million prompt tokens", 0.0, 1000.0, defaults.prompt_per_million, 0.01),
            completion_col.number_input(
                "$ per million completion tokens", 0.0, 1000.0, defaults.completion_per_million, 0.01
            ),
        )
    decision = recommend(run["modes"], weights, prices)
    if decision.mode is None:
        st.warning(" ".join(decision.reasons) or "This run has nothing to recommend from.", icon=":material/info:")
        return
    unmeasured = [label for criterion, label in CRITERIA.items() if criterion not in decision.scores]
    if unmeasured:
        st.caption(f"Not measured by this run, so not weighed: {', '.join(unmeasured).lower()}.")
    with st.container(border=True):
        st.markdown(f"### :material/recommend: Recommended: **{MODE_LABELS[decision.mode]}**")
        for reason in decision.reasons:
            st.markdown(f"- {escape_markdown(reason)}")
        st.markdown("**What would change it**")
        for flip in decision.flips:
            st.markdown(f"- {escape_markdown(flip)}")
    table = {CRITERIA[c]: {MODE_LABELS[m]: decision.values[c][m] for m in decision.scores[c]} for c in decision.scores}
    table["Weighted score"] = {MODE_LABELS[m]: _percent(u) for m, u in decision.utilities.items()}
    st.dataframe(pd.DataFrame(table).T, width="stretch")
    st.caption(
        "Latency and cost score the fastest and cheapest mode 1 and the others in proportion. Effort to update "
        "knowledge is a judgement, not a measurement (its reason is in the table)."
    )


def _percent(value) -> str:
    return "–" if value is None else f"{value:.0%}"


def _count(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _seconds(value) -> str:
    return "–" if value is None else f"{value:.1f} s"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 1):.0f} s"
