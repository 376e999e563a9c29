"""The four modes through the Lab: prompts, retrieval, adapters and the Answer they carry."""

import pytest

from core.common.vocabulary import MODES
from core.training.adapters import AdapterNotReady

pytestmark = pytest.mark.model

QUESTION = "How many days do I have to return a bike?"


@pytest.fixture(scope="module")
def answers(lab, sample):
    return {mode: lab.ask(sample, mode, QUESTION).collect() for mode in MODES}


def test_every_mode_answers_with_metrics(answers):
    for mode, answer in answers.items():
        assert answer.mode == mode and answer.text.strip()
        assert answer.completion_tokens > 0 and answer.prompt_tokens > 0
        assert answer.total_s > 0 and answer.ttft_s is not None and answer.ttft_s <= answer.total_s
        assert answer.model == "SmolLM2-135M-Instruct"


def test_only_the_retrieval_modes_carry_scored_sources(answers):
    for mode in ("rag", "hybrid"):
        sources = answers[mode].sources
        assert sources and all(0.0 <= s.score <= 1.0 for s in sources)
        assert sources[0].name == "returns_and_refunds.md"
    assert answers["base"].sources == [] and answers["finetuned"].sources == []


def test_the_retrieval_modes_prompts_hold_their_sources(answers):
    for mode in ("rag", "hybrid"):
        assert answers[mode].prompt_tokens > answers["base"].prompt_tokens + 50


def test_only_the_tuned_modes_use_the_adapter(answers, lab, sample):
    name = lab.active_adapter(sample).name
    assert answers["finetuned"].adapter == answers["hybrid"].adapter == name
    assert answers["base"].adapter is None and answers["rag"].adapter is None


def test_each_tuned_mode_shares_the_prompt_of_its_untuned_twin(answers):
    assert answers["base"].prompt_tokens == answers["finetuned"].prompt_tokens
    assert answers["rag"].prompt_tokens == answers["hybrid"].prompt_tokens


def test_answer_serialises(answers):
    data = answers["rag"].to_dict()
    assert data["sources"][0]["name"] and isinstance(data["sources"][0]["score"], float)


def test_history_is_part_of_the_prompt(lab, sample):
    alone = lab.ask(sample, "base", "And the battery?").collect()
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "45 days."}]
    follow_up = lab.ask(sample, "base", "And the battery?", history).collect()
    assert follow_up.prompt_tokens > alone.prompt_tokens


def test_adapter_modes_wait_for_an_adapter(lab, tmp_path):
    from core.common.scenario import load_scenario

    folder = tmp_path / "empty_scenario"
    (folder / "docs").mkdir(parents=True)
    (folder / "scenario.toml").write_text('name = "empty_scenario"\ntitle = "Empty"\n')
    scenario = load_scenario(folder)
    with pytest.raises(AdapterNotReady):
        lab.ask(scenario, "finetuned", "hi")
    assert lab.ask(scenario, "rag", "hi").collect().sources == []


def test_saved_retrieval_settings_drive_the_retrieval_modes(lab, sample):
    """With a minimum score no chunk reaches, RAG and hybrid decline without the model, alone and in compare;
    base still answers."""
    from core.answers.compare import Column
    from core.answers.prompts import NO_SOURCE_ANSWER, NO_SOURCE_NOTE
    from core.knowledge.manifest import RetrievalSettings

    knowledge_base = lab.knowledge_base(sample)
    saved = knowledge_base.settings
    knowledge_base.save_search_settings(RetrievalSettings.from_dict({**saved.to_dict(), "min_score": 0.95}))
    try:
        alone = lab.ask(sample, "rag", QUESTION).collect()
        assert alone.text == NO_SOURCE_ANSWER and alone.sources == [] and alone.notes == [NO_SOURCE_NOTE]
        assert alone.completion_tokens == 0 and alone.ttft_s is None
        base, rag, hybrid = lab.compare(sample, [Column("base"), Column("rag"), Column("hybrid")], QUESTION).collect()
        assert rag.text == hybrid.text == NO_SOURCE_ANSWER and rag.notes == [NO_SOURCE_NOTE]
        assert base.completion_tokens > 0 and base.text != NO_SOURCE_ANSWER
    finally:
        knowledge_base.save_search_settings(saved)
    assert lab.ask(sample, "rag", QUESTION).collect().sources  # back to normal
