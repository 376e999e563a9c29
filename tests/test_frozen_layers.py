"""Training reuses the frozen lower layers' output: same loss and gradients, and the lower layers do not run again."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from core.engine.model_store import model_source
from core.training.finetune import _assistant_loss, tokenize_example
from core.training.frozen_layers import FrozenLayerOutputs, frozen_layer_outputs
from core.training.train_config import TrainConfig


def _examples(tokenizer):
    chats = [
        ("How do I pay?", "By card or bank transfer."),
        ("What are the shop's opening hours on a Saturday?", "From 9 am to 5 pm, and closed on Sundays."),
        ("Hi", "Hello! How can I help with your bike today?"),
    ]
    return [
        tokenize_example(tokenizer, [{"role": "user", "content": q}, {"role": "assistant", "content": a}], 256)
        for q, a in chats
    ]


@pytest.mark.model
def test_kept_lower_outputs_give_the_same_loss_and_gradients_without_running_the_lower_layers(lab):
    base = AutoModelForCausalLM.from_pretrained(model_source(lab.settings)[0], dtype=torch.float32)
    layers = TrainConfig().adapted_layers(base.config.num_hidden_layers)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "down_proj"], layers_to_transform=layers))
    torch.manual_seed(0)
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.02)  # a trained adapter: its updates reach the loss
    decoder = model.get_base_model().model
    examples = _examples(lab.engine.tokenizer)
    pad = lab.engine.tokenizer.pad_token_id

    def loss_and_grads(part, frozen):
        model.zero_grad()
        loss, _ = _assistant_loss(model, part, frozen, pad, "cpu")
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    recompute = FrozenLayerOutputs(decoder.layers, 0)
    keeper = frozen_layer_outputs(decoder, layers)
    assert keeper.first_adapted == layers[0] > 0
    lower_calls = []
    decoder.layers[0].register_forward_hook(lambda *_: lower_calls.append(1))
    lowest = decoder.layers[0]

    loss_and_grads(examples[:2], keeper)  # first pass: runs every layer and keeps the two inputs
    assert len(keeper.kept) == 2 and len(lower_calls) == 1
    part = [examples[1], examples[0]]  # another order: each row is fed its own kept input
    kept_loss, kept_grads = loss_and_grads(part, keeper)
    assert len(lower_calls) == 1 and decoder.layers[0] is lowest  # skipped, then put back
    full_loss, full_grads = loss_and_grads(part, recompute)
    assert len(lower_calls) == 2
    torch.testing.assert_close(kept_loss, full_loss, rtol=1e-5, atol=1e-5)
    for kept, full in zip(kept_grads, full_grads, strict=True):
        torch.testing.assert_close(kept, full, rtol=1e-4, atol=1e-6)

    loss_and_grads(examples, keeper)  # one new example: the whole micro-batch runs, and keeps it
    assert len(lower_calls) == 3 and len(keeper.kept) == 3


def test_nothing_is_kept_beyond_the_budget():
    layers = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])
    keeper = FrozenLayerOutputs(layers, 1, max_bytes=4 * 8 * 5)  # room for 5 tokens of width 8, float32
    hidden = torch.randn(2, 4, 8)
    part = [([1, 2, 3], None), ([4, 5, 6, 7], None)]
    with keeper.running(part):
        layers[1](hidden)
    assert list(keeper.kept) == [(1, 2, 3)]
    assert torch.equal(keeper.kept[(1, 2, 3)], hidden[0, :3])
