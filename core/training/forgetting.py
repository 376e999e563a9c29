"""The forgetting check: did fine-tuning cost the model general knowledge it had?

A small general-knowledge set (written for the Lab, shipped in core/training/data) is answered greedily by the
base model and by the new adapter, with the scenario's system prompt as the fine-tuned mode uses it.
An answer counts when it contains every expected pattern; the report is the two scores and each answer.
"""

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

GENERAL_SET = Path(__file__).parent / "data" / "general_knowledge.jsonl"
MAX_NEW_TOKENS = 40


@dataclass(frozen=True)
class CheckedAnswer:
    question: str
    base: str
    adapter: str
    base_correct: bool
    adapter_correct: bool


def general_questions() -> list[dict]:
    return [json.loads(line) for line in GENERAL_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_correct(answer: str, must_include: list[str]) -> bool:
    return all(re.search(pattern, answer, re.IGNORECASE) for pattern in must_include)


@torch.no_grad()
def _answers(model, tokenizer, prompts: list[list[int]]) -> list[str]:
    width = max(map(len, prompts))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    output = model.generate(
        input_ids=input_ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=pad
    )
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output]


def check_forgetting(peft_model, tokenizer, system_prompt: str) -> dict:
    """Answers the set with the adapter off, then on; returns the scores and every answer."""
    questions = general_questions()
    prompts = [
        list(
            tokenizer.apply_chat_template(
                [{"role": "system", "content": system_prompt}, {"role": "user", "content": q["question"]}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        )
        for q in questions
    ]
    was_training = peft_model.training
    peft_model.eval()
    with peft_model.disable_adapter():
        base = _answers(peft_model, tokenizer, prompts)
    tuned = _answers(peft_model, tokenizer, prompts)
    peft_model.train(was_training)
    rows = [
        CheckedAnswer(q["question"], b, t, is_correct(b, q["must_include"]), is_correct(t, q["must_include"]))
        for q, b, t in zip(questions, base, tuned, strict=True)
    ]
    return {
        "questions": len(rows),
        "base_correct": sum(r.base_correct for r in rows),
        "adapter_correct": sum(r.adapter_correct for r in rows),
        "answers": [asdict(r) for r in rows],
    }
