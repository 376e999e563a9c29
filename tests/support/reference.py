"""The reference the engine is tested against: transformers' generate() on a separately loaded model.

The model uses the engine's batch-invariant kernels (core/engine/row_products.py, core/engine/row_attention.py),
and its prompt is prefilled as the engine prefills one: the system prompt, then the rest but the last
token, which generate() then runs as its first decoding step. What differs from the engine is
everything the engine does on its own: its cache buffers, prefix cache, batching, LoRA hooks and
logits processing."""

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, DynamicCache, LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from core.common.vocabulary import Decoding
from core.engine.engine import use_batch_invariant_kernels
from core.engine.int8_weights import quantize_linear_layers


def reference_model(source: str, dtype: torch.dtype, adapter_path=None, quantization: str = "none"):
    """The plain model, or peft's model of an adapter, with the engine's kernels (and its int8 weights)."""
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).eval()
    if quantization == "int8":
        quantize_linear_layers(model)
    wrapped = PeftModel.from_pretrained(model, str(adapter_path)).eval() if adapter_path else model
    use_batch_invariant_kernels(model)  # the base layers under peft's LoRA layers; those keep peft's products
    return wrapped


def reference_generate(model, tokenizer, messages: list[dict], decoding: Decoding) -> list[int]:
    """Greedy token ids of generate() for `messages`."""
    prompt = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    system = []
    if messages[0]["role"] == "system":
        system = list(tokenizer.apply_chat_template(messages[:1], tokenize=True, return_dict=False))
    head = len(system) if prompt[: len(system)] == system and 0 < len(system) < len(prompt) - 1 else 0
    penalty = RepetitionPenaltyLogitsProcessor(decoding.repetition_penalty, prompt_ignore_length=len(prompt))
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        for part in (prompt[:head], prompt[head:-1]):
            if part:
                model(input_ids=torch.tensor([part]), past_key_values=cache, use_cache=True)
        output = model.generate(
            input_ids=torch.tensor([prompt]),
            past_key_values=cache,
            do_sample=False,
            max_new_tokens=decoding.max_new_tokens,
            logits_processor=LogitsProcessorList([penalty]),
        )
    return output[0, len(prompt) :].tolist()
