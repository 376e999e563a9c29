"""How far each precision's answers stray from float32's, in minutes rather than an evaluation's half hour.

    python -m bench.divergence [int8 bfloat16 int8-weights-only]   (model: LAB_MODEL's, default the Lab's)

Fifteen generic prompts (twelve questions, three with a passage of this README as sources; none from a
scenario) are answered greedily in float32, 48 tokens each, by the model as the engine packs it. Each
other precision then reads float32's answers (teacher forcing: how often its top token is float32's,
and the KL divergence of its next-token distribution, per token) and answers freely (tokens equal
before the first difference; answers equal throughout). "int8-weights-only" is not a Lab setting: the
float32 model with every linear weight rounded to int8 per row, inputs left in float32, to tell the
weights' rounding from the inputs'. A screen before `bench.precision_eval`, which decides.
Prints a table and writes a "divergence" section (per model) to bench/results.json.
"""

import json
import sys
from pathlib import Path

import torch

from bench.precision_eval import PRECISIONS
from bench.run_info import run_info
from core.common.settings import get_settings
from core.engine.engine import Engine
from core.engine.int8_weights import LEVELS, int8_rows
from core.engine.model_store import load_model

ROOT = Path(__file__).resolve().parent.parent
NEW_TOKENS = 48
QUESTIONS = [
    "What is the capital of Australia?",
    "Explain what a hash map is in two sentences.",
    "Write a haiku about autumn rain.",
    "How do I reverse a list in Python?",
    "Why is the sky blue?",
    "Give three tips for a job interview.",
    "What does HTTP status 404 mean?",
    "Summarise the plot of Romeo and Juliet briefly.",
    "What is the difference between RAM and disk storage?",
    "How many legs does a spider have?",
    "Translate 'good morning' into French and Spanish.",
    "What is a LoRA adapter?",
]
SOURCE_QUESTIONS = [
    "What does the text say you should run first?",
    "Which settings does the text mention?",
    "What does the text say about tests?",
]
SETTINGS = {**PRECISIONS, "int8-weights-only": PRECISIONS["float32"]}


def prompts(tokenizer) -> list[torch.Tensor]:
    readme = (ROOT / "README.md").read_text()
    chats = [[{"role": "user", "content": question}] for question in QUESTIONS]
    for start, question in zip((2000, 9000, 16000), SOURCE_QUESTIONS, strict=True):
        sources = readme[start : start + 1200]
        chats.append(
            [
                {"role": "system", "content": f"Answer only from the sources.\n\nSources:\n{sources}"},
                {"role": "user", "content": question},
            ]
        )
    return [
        tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)[
            "input_ids"
        ]
        for chat in chats
    ]


def round_weights_to_int8(model: torch.nn.Module) -> None:
    """Every linear weight rounded to the Lab's int8 rows (core.engine.int8_weights), kept in float32."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                int8, scale = int8_rows(module.weight)
                module.weight.copy_(int8[:, : module.in_features].float() * scale[:, None])


def packed_model(precision: str) -> tuple[torch.nn.Module, object]:
    """The model as the engine answers with it in `precision`, and its tokenizer."""
    settings = get_settings().model_copy(update=SETTINGS[precision])
    loaded = load_model(settings)
    if precision == "int8-weights-only":
        round_weights_to_int8(loaded.model)
    return Engine(loaded, None, settings.quantization).model, loaded.tokenizer


def main() -> None:
    precisions = sys.argv[1:] or ["bfloat16", "int8", "int8-weights-only"]
    reference, tokenizer = packed_model("float32")
    asked = prompts(tokenizer)
    with torch.inference_mode():
        answers = [reference.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False) for ids in asked]
        expected = [
            reference(answer).logits[0, len(ids[0]) - 1 : -1].float()
            for answer, ids in zip(answers, asked, strict=True)
        ]
    del reference
    rows = {}
    for precision in precisions:
        model, _ = packed_model(precision)
        same_top = tokens = 0
        divergence = 0.0
        prefixes, equal = [], 0
        with torch.inference_mode():
            for ids, answer, want in zip(asked, answers, expected, strict=True):
                got = model(answer).logits[0, len(ids[0]) - 1 : -1].float()
                same_top += int((got.argmax(-1) == want.argmax(-1)).sum())
                tokens += len(want)
                divergence += float(
                    torch.nn.functional.kl_div(
                        got.log_softmax(-1), want.log_softmax(-1), log_target=True, reduction="sum"
                    )
                )
                own = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)[0, len(ids[0]) :]
                theirs = answer[0, len(ids[0]) :]
                length = min(len(own), len(theirs))
                prefixes.append(int((own[:length] == theirs[:length]).int().cumprod(0).sum()))
                equal += int(torch.equal(own, theirs))
        rows[precision] = {
            "same_top_token": round(same_top / tokens, 4),
            "kl_per_token": round(divergence / tokens, 5),
            "equal_prefix_tokens": round(sum(prefixes) / len(prefixes), 1),
            "equal_answers": f"{equal}/{len(asked)}",
        }
        del model
    print(f"\n{'precision':<20}{'same top token':>16}{'KL / token':>12}{'equal prefix':>14}{'equal answers':>15}")
    for precision, row in rows.items():
        print(
            f"{precision:<20}{row['same_top_token']:>16.4f}{row['kl_per_token']:>12.5f}"
            f"{row['equal_prefix_tokens']:>10.1f}/{NEW_TOKENS}{row['equal_answers']:>15}"
        )
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    section = existing.get("divergence", {})
    earlier = section.get(get_settings().model, {}).get("precisions", {})  # a run of some precisions keeps the others
    section[get_settings().model] = {**run_info(), "int8_input_levels": LEVELS, "precisions": {**earlier, **rows}}
    out.write_text(json.dumps({**existing, "divergence": section}, indent=2) + "\n")


if __name__ == "__main__":
    main()
