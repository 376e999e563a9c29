"""The decision card on hand-made run figures: weights pick the mode, the sensitivity names what flips it,
ties go to the simpler mode, unmeasured criteria are left out, and the reasons quote the figures."""

from core.evaluation.decision import DEFAULT_WEIGHTS, EFFORT, Prices, criterion_scores, recommend


def figures(accuracy, latency, prompt_tokens=100, completion_tokens=40, **shares) -> dict:
    """One mode's metrics as core.evaluation.runs.summarise writes them."""
    return {
        "accuracy": accuracy,
        "freshness": shares.get("freshness", 0.5),
        "refusal": shares.get("refusal", 0.5),
        "style": shares.get("style", 0.5),
        "latency_p50_s": latency,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
    }


# base is fast and cheap but wrong; rag is accurate and twice as slow
RUN = {
    "base": figures(0.2, 1.0, prompt_tokens=50, freshness=0.1),
    "rag": figures(0.8, 2.0, prompt_tokens=500, freshness=0.9),
}


def test_accuracy_alone_picks_the_most_accurate_mode():
    decision = recommend(RUN, {"accuracy": 1})
    assert decision.mode == "rag"
    assert decision.utilities == {"base": 0.2, "rag": 0.8}
    assert decision.reasons[0] == "RAG scores 80% on your priorities, ahead of Base at 20%."
    assert "Accuracy: RAG 80% against Base 20%." in decision.reasons


def test_raising_the_latency_weight_flips_to_the_faster_mode():
    decision = recommend(RUN, {"accuracy": 1})
    # rag: (0.8 + w * 0.5) / (1 + w); base: (0.2 + w * 1.0) / (1 + w); base wins once w > 1.2
    assert "Raising latency from 0 to 1.5 would recommend Base." in decision.flips
    assert "No weight of freshness alone changes the recommendation." in decision.flips

    faster = recommend(RUN, {"accuracy": 1, "latency": 1.5})
    assert faster.mode == "base" and faster.utilities["base"] > faster.utilities["rag"]
    assert "Latency: Base 1.0 s against RAG 2.0 s." in faster.reasons
    assert "It gives up accuracy: 20% against RAG 80%." in faster.reasons
    assert "Lowering latency from 1.5 to 1 would recommend RAG." in faster.flips


def test_zero_weights_recommend_nothing_with_a_reason():
    decision = recommend(RUN, dict.fromkeys(DEFAULT_WEIGHTS, 0))
    assert decision.mode is None
    assert decision.reasons == ["Give at least one priority a weight above zero."]
    assert decision.flips == []
    assert recommend({}, DEFAULT_WEIGHTS).mode is None


def test_ties_go_to_the_simpler_mode():
    same = figures(0.6, 1.0)
    assert recommend({"hybrid": same, "finetuned": same, "rag": same}, {"accuracy": 1}).mode == "rag"
    assert recommend({"hybrid": same, "finetuned": same}, {"accuracy": 1, "latency": 3}).mode == "finetuned"
    assert recommend({"rag": same, "base": same}, {"style": 2}).mode == "base"
    # effort tells them apart once it counts: documents update rag at once
    assert recommend({"rag": same, "base": same}, {"style": 2, "effort": 1}).mode == "rag"


def test_a_criterion_missing_for_any_mode_is_left_out():
    run = {"base": {**RUN["base"], "freshness": None}, "rag": RUN["rag"]}
    scores, values = criterion_scores(run, Prices())
    assert "freshness" not in scores and "freshness" not in values
    assert {"accuracy", "refusal", "style", "latency", "cost", "effort"} <= set(scores)

    decision = recommend(run, {"freshness": 5})  # the only weighted priority cannot be scored
    assert decision.mode is None and "freshness" not in decision.scores

    no_latency = {"base": {**RUN["base"], "latency_p50_s": None}, "rag": RUN["rag"]}
    assert "latency" not in criterion_scores(no_latency, Prices())[0]


def test_criterion_scores_come_with_their_figures_in_words():
    scores, values = criterion_scores(RUN, Prices(prompt_per_million=1.0, completion_per_million=2.0))
    assert scores["latency"] == {"base": 1.0, "rag": 0.5}  # fastest / this mode's median
    # per 1,000 questions: base 1000 * (50 * 1 + 40 * 2) / 1e6 = $0.13, rag 1000 * (500 + 80) / 1e6 = $0.58
    assert values["cost"] == {"base": "$0.130", "rag": "$0.580"}
    assert scores["cost"]["base"] == 1.0 and round(scores["cost"]["rag"], 4) == round(0.13 / 0.58, 4)
    assert scores["effort"] == {"base": EFFORT["base"][0], "rag": EFFORT["rag"][0]}
    assert values["accuracy"] == {"base": "20%", "rag": "80%"} and values["latency"]["rag"] == "2.0 s"


def test_a_single_mode_is_recommended_with_a_plain_reason():
    decision = recommend({"hybrid": RUN["rag"]}, DEFAULT_WEIGHTS)
    assert decision.mode == "hybrid"
    assert decision.reasons == ["Hybrid is the only mode in this run."]
