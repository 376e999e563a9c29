"""The leaderboard's chart (each mode's rating and its likely range) and the method behind it."""

import altair as alt
import streamlit as st

from core.evaluation.leaderboard import FEW_VOTES, Standing, rating_domain


def render_standings_chart(standings: list[Standing]) -> None:
    data = alt.Data(values=[s.to_dict() for s in standings])
    base = alt.Chart(data, height=50 * len(standings) + 40).encode(
        y=alt.Y("contestant:N", sort=alt.EncodingSortField("rating", order="descending"), title=None)
    )
    axis = alt.Axis(format="d", tickMinStep=10, tickCount=8)  # whole rating points, never "1,000.000000"
    interval = base.mark_rule(strokeWidth=3).encode(
        x=alt.X(
            "rating_low:Q",
            title="Rating (1000 = average) and its likely range",
            scale=alt.Scale(domain=list(rating_domain(standings)), zero=False),
            axis=axis,
        ),
        x2="rating_high:Q",
    )
    point = base.mark_point(filled=True, size=120).encode(
        x="rating:Q",
        tooltip=[
            alt.Tooltip("contestant:N", title="Mode"),
            alt.Tooltip("rating:Q", title="Rating", format=".0f"),
            alt.Tooltip("rating_low:Q", title="Likely from", format=".0f"),
            alt.Tooltip("rating_high:Q", title="Likely to", format=".0f"),
            alt.Tooltip("votes:Q", title="Comparisons"),
        ],
    )
    st.altair_chart(interval + point, width="stretch")


def render_method() -> None:
    with st.expander("How the ratings are computed", icon=":material/functions:"):
        st.markdown(
            "Each vote is a set of match-ups between the answers shown: the chosen answer beats every other one; "
            "a tie or “all bad” is a draw between every pair. Ratings are Bradley-Terry strengths on the Elo scale "
            "(1000 is average; +400 means ten-to-one odds of being preferred). The likely range is a 95% bootstrap "
            f"interval: the votes resampled 500 times. With fewer than {FEW_VOTES} votes it says little."
        )
