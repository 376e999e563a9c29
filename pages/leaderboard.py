"""Leaderboard: which mode people preferred in blind votes and how sure that is, in a sentence first; then the
ratings with 95% bootstrap intervals, the method, and CSV/JSON export."""

import streamlit as st

from core.common.export import csv_text, json_text
from core.evaluation.arena import list_votes, vote_rows
from core.evaluation.leaderboard import leaderboard, plain_summary
from core.text.safe_text import escape_markdown
from ui.leaderboard import render_method, render_standings_chart
from ui.resources import current_scenario, get_lab
from ui.sidebar import page_frame

page_frame()
lab = get_lab()
scenario = current_scenario()
st.title(":material/leaderboard: Leaderboard")
st.caption("Which mode people preferred in blind votes on the Compare page, and how sure we can be of it.")

votes = list_votes(lab.settings.data_dir, scenario.name)
if not votes:
    st.info("No votes for this scenario yet. Turn on **Blind vote** on the Compare page, ask, and vote.")
    st.page_link("pages/compare.py", label="Go to Compare", icon=":material/view_column:")
    st.stop()

summary = st.container()  # the plain sentence leads; the choices that shape it come after
models = sorted({v.model for v in votes})
if len(models) > 1:  # a mode's strength depends on its base model: rate each model's votes apart
    shown = lab.model_label if lab.model_label in models else models[0]
    model = st.segmented_control("Base model", models, default=shown, key="leaderboard_model") or shown
    votes = [v for v in votes if v.model == model]
split = st.toggle("Tell adapters apart", help="Rate fine-tuned and hybrid separately for each adapter version.")
standings = leaderboard(votes, split_adapters=split)
summary.info(plain_summary(standings, len(votes)), icon=":material/how_to_vote:")
table = [
    {
        "Mode": s.contestant,
        "Rating": round(s.rating),
        "Likely range": f"{s.rating_low:.0f} – {s.rating_high:.0f}",
        "Win rate": s.win_rate,
        "Win rate, likely range": f"{s.win_rate_low:.0%} – {s.win_rate_high:.0%}",
        "Chosen best": s.chosen,
        "Comparisons": s.votes,
    }
    for s in standings
]
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={"Win rate": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)},
)
st.caption(f"{len(votes)} vote(s) in scenario {escape_markdown(scenario.title)}.")
render_standings_chart(standings)
render_method()

export = {
    "scenario": scenario.name,
    "standings": [s.to_dict() for s in standings],
    "votes": [v.to_dict() for v in votes],
}
downloads = st.columns(2)
downloads[0].download_button(
    "Votes as CSV", csv_text(vote_rows(votes)), f"{scenario.name}-votes.csv", "text/csv", icon=":material/download:"
)
downloads[1].download_button(
    "Leaderboard and votes as JSON",
    json_text(export),
    f"{scenario.name}-leaderboard.json",
    "application/json",
    icon=":material/download:",
)

with st.expander(f"Votes ({len(votes)})"):
    st.dataframe(
        [
            {"Question": v.question, "Choice": v.winner["mode"] if v.winner else v.choice, "Answers": len(v.entries)}
            for v in reversed(votes)
        ],
        hide_index=True,
        width="stretch",
    )
