"""LoRA training: assistant-only labels, seeded, saved in peft format with metadata, loaded back exactly."""

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from core.common.model_catalog import SMOLLM2
from core.engine.model_store import model_source
from core.engine.row_products import packs_for_onednn
from core.training.adapters import active_adapter, list_adapters
from core.training.finetune import (
    IGNORE,
    _assistant_loss,
    micro_batches,
    tokenize_example,
    train_adapter,
)
from core.training.frozen_layers import FrozenLayerOutputs
from core.training.mixed_precision import (
    SPEEDUP_NEEDED,
    TrainingPrecision,
    bfloat16_product_speedup,
    training_precision,
)
from core.training.train_config import TrainConfig
from tests.conftest import QUICK_TRAINING
from tests.support.reference import reference_model


@pytest.mark.model
def test_only_assistant_tokens_are_labelled(lab):
    tokenizer = lab.engine.tokenizer
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "first?"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "second?"},
        {"role": "assistant", "content": "Two."},
    ]
    ids, labels = tokenize_example(tokenizer, messages, 512)
    assert len(ids) == len(labels)
    learned = tokenizer.decode([t for t in labels if t != IGNORE])
    assert learned == "One.<|im_end|>\nTwo.<|im_end|>\n"
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    assert ids == list(full)


@pytest.mark.model
def test_an_adapter_is_saved_with_its_metadata(lab, sample):
    adapter = active_adapter(lab.settings.data_dir, sample.name, SMOLLM2.name)
    assert (adapter.path / "adapter_config.json").exists()
    assert (adapter.path / "adapter_model.safetensors").exists()
    config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["peft_type"] == "LORA"
    meta = adapter.metadata
    assert meta["base_model"] == "SmolLM2-135M-Instruct" and len(meta["dataset_sha256"]) == 64
    assert meta["loss_history"] and meta["duration_s"] > 0 and meta["config"]["rank"] == 16


@pytest.mark.model
def test_plain_peft_gives_the_engines_logits_for_an_adapter(lab, sample):
    """The engine runs LoRA with its own hooks, computed as peft computes it."""
    adapter = active_adapter(lab.settings.data_dir, sample.name, SMOLLM2.name)
    lab.engine.ensure_adapter(adapter.engine_name, adapter.path)
    reloaded = reference_model(model_source(lab.settings)[0], lab.engine.dtype, adapter.path)  # peft
    ids = torch.tensor([lab.engine.encode([{"role": "user", "content": "Hi"}], 1)[0]])
    with torch.inference_mode():
        expected = reloaded(input_ids=ids).logits
        lab.engine.lora.route([adapter.engine_name])
        got = lab.engine.model(input_ids=ids).logits
    assert torch.equal(expected, got)


@pytest.mark.model
def test_adapter_changes_greedy_output(lab, sample):
    adapter = active_adapter(lab.settings.data_dir, sample.name, SMOLLM2.name)
    lab.engine.ensure_adapter(adapter.engine_name, adapter.path)
    messages = [{"role": "system", "content": sample.system_prompt}, {"role": "user", "content": "How do I pay?"}]
    decoding = lab.decoding()

    def greedy(name):
        return "".join(piece for piece in lab.engine.stream(messages, name, decoding) if isinstance(piece, str))

    assert decoding.temperature == 0 and greedy(None) == greedy(None)
    assert greedy(adapter.engine_name) != greedy(None)


def test_long_batches_train_in_boundedmicro_batches():
    batch = [([1] * n, [1] * n) for n in (600, 100, 580, 90, 300)]
    parts = micro_batches(batch, 2048)
    assert sorted(len(e[0]) for part in parts for e in part) == [90, 100, 300, 580, 600]
    assert all(len(part) * max(len(e[0]) for e in part) <= 2048 for part in parts)
    assert len(parts) == 2


@pytest.mark.model
def test_training_is_seeded(lab, sample, tmp_path):
    settings = lab.settings.model_copy(update={"data_dir": tmp_path})
    (tmp_path / "models").symlink_to((lab.settings.data_dir / "models").resolve())
    config = TrainConfig(**{**QUICK_TRAINING, "max_steps": 2})
    first = train_adapter(settings, sample, config, name="a")
    second = train_adapter(settings, sample, config, name="b")
    assert first.metadata["loss_history"] == second.metadata["loss_history"]
    assert [a.name for a in list_adapters(tmp_path, sample.name)] == ["a", "b"]
    assert active_adapter(tmp_path, sample.name, SMOLLM2.name).name == "b"


@pytest.mark.model
def test_training_on_a_cpu_keeps_float32_weights_whatever_dtype_answers(lab, sample, tmp_path):
    """bfloat16 answers stayed within 0.03 of float32's on the sample, an adapter of a model loaded in
    bfloat16 did not: the weights and the saved adapter stay float32. Where bfloat16 answers on a CPU
    that multiplies it natively and measures it faster, only the products run in it."""
    settings = lab.settings.model_copy(update={"data_dir": tmp_path, "dtype": "bfloat16"})
    (tmp_path / "models").symlink_to((lab.settings.data_dir / "models").resolve())
    adapter = train_adapter(settings, sample, TrainConfig(**{**QUICK_TRAINING, "max_steps": 1}), name="b")
    assert adapter.metadata["dtype"] == "float32"
    faster = packs_for_onednn(torch.bfloat16) and bfloat16_product_speedup() >= SPEEDUP_NEEDED
    assert adapter.metadata["autocast"] == ("bfloat16" if faster else None)
    with safe_open(adapter.path / "adapter_model.safetensors", framework="pt") as weights:
        dtypes = {weights.get_slice(key).get_dtype() for key in weights.keys()}  # noqa: SIM118
    assert dtypes == {"F32"}
    float32 = lab.settings.model_copy(update={"data_dir": tmp_path, "dtype": "float32"})
    assert training_precision(float32, "cpu") == TrainingPrecision("cpu", None)


@pytest.mark.model
def test_failed_training_publishes_nothing(lab, sample, tmp_path):
    settings = lab.settings.model_copy(update={"data_dir": tmp_path})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(ValueError, match="no assistant turn"):
        train_adapter(settings, sample, TrainConfig(**QUICK_TRAINING), dataset_path=bad)
    assert list_adapters(tmp_path, sample.name) == []
    assert active_adapter(tmp_path, sample.name, SMOLLM2.name) is None


@pytest.mark.model
def test_the_default_adapter_covers_the_upper_layers_and_answers_with_only_those(lab, sample, tmp_path):
    settings = lab.settings.model_copy(update={"data_dir": tmp_path})
    (tmp_path / "models").symlink_to((lab.settings.data_dir / "models").resolve())
    adapter = train_adapter(settings, sample, TrainConfig(**QUICK_TRAINING), name="upper")
    config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == list(range(15, 30))  # SmolLM2: 30 layers
    with safe_open(adapter.path / "adapter_model.safetensors", framework="pt") as weights:
        layers = {int(key.split(".layers.")[1].split(".")[0]) for key in weights.keys()}  # noqa: SIM118
        modules = {key.split(".lora_")[0].rpartition(".")[2] for key in weights.keys()}  # noqa: SIM118
    assert layers == set(range(15, 30))
    assert modules == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    # The engine runs it as peft does, and it changes the answer.
    lab.engine.ensure_adapter("upper", adapter.path)
    reloaded = reference_model(model_source(lab.settings)[0], lab.engine.dtype, adapter.path)  # peft
    ids = torch.tensor([lab.engine.encode([{"role": "user", "content": "How do I pay?"}], 1)[0]])
    with torch.inference_mode():
        expected = reloaded(input_ids=ids).logits
        lab.engine.lora.route(["upper"])
        got = lab.engine.model(input_ids=ids).logits
        lab.engine.lora.route(["__base__"])
        plain = lab.engine.model(input_ids=ids).logits
    lab.engine.forget_adapter("upper")
    assert torch.equal(expected, got) and not torch.equal(got, plain)


def _adapted_model_and_examples(lab):
    """The lab's base model in float32 under a LoRA adapter whose updates reach the loss, and two examples."""
    base = AutoModelForCausalLM.from_pretrained(model_source(lab.settings)[0], dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear"))
    torch.manual_seed(0)
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.02)  # a trained adapter: its updates reach the loss
    tokenizer = lab.engine.tokenizer
    part = [
        tokenize_example(tokenizer, [{"role": "user", "content": q}, {"role": "assistant", "content": a}], 128)
        for q, a in [("How do I pay?", "By card or bank transfer."), ("Hi", "Hello! How can I help today?")]
    ]
    return model, part


def _loss_and_gradients(model, part, pad_id, precision):
    model.zero_grad()
    loss, _ = _assistant_loss(model, part, FrozenLayerOutputs(None, 0), pad_id, "cpu", precision=precision)
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


@pytest.mark.model
def test_bfloat16_products_give_float32s_loss_and_gradients_to_their_rounding(lab):
    """Training's bfloat16 products (core.training.mixed_precision): the decoder's give bfloat16 outputs,
    the vocabulary projection's float32 logits, and the loss and LoRA gradients stay float32's to
    bfloat16's rounding."""
    model, part = _adapted_model_and_examples(lab)
    products, logits = [], []
    query = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    query.register_forward_hook(lambda _module, _inputs, output: products.append(output.dtype))
    model.get_base_model().lm_head.register_forward_hook(lambda _module, _inputs, output: logits.append(output.dtype))

    pad_id = lab.engine.tokenizer.pad_token_id
    exact_loss, exact = _loss_and_gradients(model, part, pad_id, TrainingPrecision("cpu", None))
    mixed_loss, mixed = _loss_and_gradients(model, part, pad_id, TrainingPrecision("cpu", torch.bfloat16))
    assert products == [torch.float32, torch.bfloat16] and logits == [torch.float32, torch.float32]
    assert mixed_loss != exact_loss  # rounded, so not the same sums
    torch.testing.assert_close(mixed_loss, exact_loss, rtol=1e-2, atol=0)
    assert torch.nn.functional.cosine_similarity(mixed, exact, dim=0) > 0.995


@pytest.mark.model
def test_frozen_weights_cast_once_give_autocasts_loss_and_gradients_bit_for_bit(lab):
    """`TrainingPrecision.cast_frozen_weights`: the base weights held in bfloat16 for the run give the very
    sums autocast's cast at every forward gives, and the float32 weights come back untouched."""
    model, part = _adapted_model_and_examples(lab)
    layers = model.get_base_model().model.layers
    query = layers[0].self_attn.q_proj
    float_weight, float_bias, lora_weight = (
        query.base_layer.weight,
        query.base_layer.bias,
        query.lora_A["default"].weight,
    )
    pad_id = lab.engine.tokenizer.pad_token_id
    precision = TrainingPrecision("cpu", torch.bfloat16)
    cast_each_time = _loss_and_gradients(model, part, pad_id, precision)

    restore = precision.cast_frozen_weights(layers)
    assert query.base_layer.weight.dtype == torch.bfloat16 and query.lora_A["default"].weight is lora_weight
    cast_once = _loss_and_gradients(model, part, pad_id, precision)
    restore()

    assert torch.equal(cast_once[0], cast_each_time[0]) and torch.equal(cast_once[1], cast_each_time[1])
    assert query.base_layer.weight is float_weight and query.base_layer.bias is float_bias
    TrainingPrecision("cpu", None).cast_frozen_weights(layers)
    assert query.base_layer.weight is float_weight  # float32 products: nothing cast
