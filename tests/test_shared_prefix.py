"""Training runs a beginning its examples share once per step: same loss and gradients as whole examples."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from core.engine.model_store import model_source
from core.training.finetune import IGNORE, _assistant_loss, micro_batches, tokenize_example
from core.training.frozen_layers import FrozenLayerOutputs, frozen_layer_outputs
from core.training.shared_prefix import MIN_SHARED_TOKENS, SharedPrefix, prefix_groups
from core.training.train_config import TrainConfig

SYSTEM = "You are the support assistant of a bike shop. Answer briefly and politely."
CHATS = [
    ("How do I pay?", "By card or bank transfer."),
    ("What are the shop's opening hours on a Saturday?", "From 9 am to 5 pm, and closed on Sundays."),
    ("Hi", "Hello! How can I help with your bike today?"),
    ("Do you repair e-bikes?", "Yes: motors, batteries and brakes, usually within two days."),
]


def _example(ids: list[int], answer_from: int) -> tuple[list[int], list[int]]:
    return ids, [IGNORE] * answer_from + ids[answer_from:]


def test_examples_that_begin_alike_share_their_beginning_up_to_the_token_before_the_first_label():
    system = list(range(100, 120))
    first = _example([*system, 1, 2, 3, 50, 51], 23)
    second = _example([*system, 1, 2, 4, 60], 23)
    third = _example([*system, 7, 8, 9, 70, 71], 23)
    other = _example([5, *system, 9, 80], 22)
    groups = prefix_groups([third, other, first, second])
    assert sorted((shared, sorted(ids for ids, _ in members)) for shared, members in groups) == [
        (0, [other[0]]),  # begins otherwise: alone, nothing shared
        (20, sorted([first[0], second[0], third[0]])),  # the system tokens; 1, 2 are not in all three
    ]
    early = _example([*system, 1, 2, 3, 50, 51], 12)  # a label at token 12: shares only tokens 0-10
    assert [shared for shared, _ in prefix_groups([first, early])] == [11]
    short = _example([*system[: MIN_SHARED_TOKENS - 1], 1, 50], MIN_SHARED_TOKENS)
    assert prefix_groups([first, short]) == [(0, [short, first])]  # too little in common: one group, unshared


def test_groups_split_where_that_saves_more_tokens():
    """Plain and grounded examples share the system prompt's first sentence (12 tokens here); apart, the plain
    ones share their 20-token system prompt and the grounded ones a 52-token one: 20 + 52 saved, not 3 * 12."""
    sentence = list(range(100, 112))
    plain = [_example([*sentence, *range(200, 208), question, 9], 21) for question in (1, 2)]
    grounded = [_example([*sentence, *range(300, 340), question, 9], 53) for question in (1, 2)]
    groups = prefix_groups([plain[0], grounded[0], plain[1], grounded[1]])
    assert sorted(groups) == [(20, plain), (52, grounded)]


@pytest.mark.model
def test_a_shared_beginning_gives_the_loss_and_gradients_of_whole_examples(lab):
    base = AutoModelForCausalLM.from_pretrained(model_source(lab.settings)[0], dtype=torch.float32)
    layers = TrainConfig().adapted_layers(base.config.num_hidden_layers)
    model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["k_proj", "v_proj", "down_proj"], layers_to_transform=layers)
    )
    torch.manual_seed(0)
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.02)  # a trained adapter: its updates reach the loss
    decoder = model.get_base_model().model
    tokenizer = lab.engine.tokenizer
    batch = [
        tokenize_example(
            tokenizer,
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": q},
                {"role": "assistant", "content": a},
            ],
            256,
        )
        for q, a in CHATS
    ]
    ((shared, group),) = prefix_groups(batch)
    assert shared >= 15 and len(group) == len(batch)
    pad = tokenizer.pad_token_id

    def step(frozen: FrozenLayerOutputs, share: bool):
        """One optimiser step's summed loss and gradients, in micro-batches of two examples."""
        model.zero_grad()
        prefix = SharedPrefix(decoder, group, shared, frozen) if share else None
        total = torch.zeros(())
        skip = shared if share else 0
        parts = micro_batches(group, 2 * max(len(ids) - skip for ids, _ in group), skip=skip)
        assert len(parts) == 2  # the beginning's gradients gather across micro-batches
        for part in parts:
            loss, _ = _assistant_loss(model, part, frozen, pad, "cpu", prefix)
            loss.backward()
            total += loss.detach()
        if prefix:
            prefix.backward()
        return total, [p.grad.clone() for p in model.parameters() if p.requires_grad]

    whole_loss, whole_grads = step(FrozenLayerOutputs(decoder.layers, 0), share=False)
    keeper = frozen_layer_outputs(decoder, layers)
    lower_calls = []
    decoder.layers[0].register_forward_hook(lambda *_: lower_calls.append(1))
    for expected_lower_calls in (3, 3):  # the beginning and two parts; then all kept: none
        shared_loss, shared_grads = step(keeper, share=True)
        assert len(lower_calls) == expected_lower_calls and len(keeper.kept) == len(batch)
        torch.testing.assert_close(shared_loss, whole_loss, rtol=1e-5, atol=1e-5)
        for ours, whole in zip(shared_grads, whole_grads, strict=True):  # float32 sums in another order
            torch.testing.assert_close(ours, whole, rtol=1e-4, atol=1e-4 * whole.abs().max().item())
    # what was kept in pieces is each example's whole input, as a whole pass keeps it
    whole_keeper = frozen_layer_outputs(decoder, layers)
    step(whole_keeper, share=False)
    for key, kept in keeper.kept.items():
        expected = whole_keeper.kept[key]
        torch.testing.assert_close(kept, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
