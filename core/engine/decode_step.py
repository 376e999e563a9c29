"""A decode step (one new token per row, or several for a row checking guesses) through a Llama-shaped decoder,
without transformers' per-call plumbing.

At batch 1 about half of a step was Python around the torch ops. The model's own forward builds a
4-D mask, threads keyword arguments through every layer, wraps outputs in dataclasses, and row
attention (core.engine.row_attention) found each row's first key from that mask again in every layer.
Here a step calls the same modules and the same torch functions in the same order (norms, linear
layers with their LoRA hooks, the model's own rotary embedding, row attention), and finds each row's
first key once: the logits are bit for bit the model's forward's (tests/test_decode_step.py checks it
in the Lab's dtype, in int8, with adapters and padded rows). Layers packed as one product (q, k and v;
gate and up) are read as views of it, without a copy of each layer's columns. Measured on 2 cores
(docs/benchmarks.md, "A leaner decode step" and "Fewer calls a step"): one row's step 1-3 ms shorter,
e.g. SmolLM2 int8 23.3 -> 21.2 ms, then Qwen bfloat16 50-53 -> 45-47 ms with the sets.

Only Llama and Qwen2 decoders, the bundled models' shapes, with row attention (CPU) take this path;
any other model decodes through its own forward (`DecodeBatch` asks `fits_decode_step`).
"""

import sys
from collections.abc import Callable

import torch

from core.engine.row_attention import ROW_ATTENTION, attend_rows

# Families whose decoder layer is: norm, attention (q, k, v, o; rotary), residual, norm, gated MLP, residual.
_LLAMA_SHAPED = ("llama", "qwen2")


def fits_decode_step(model: torch.nn.Module) -> bool:
    """Whether `decode_step` computes exactly what `model`'s own forward computes."""
    config = model.config
    if config.model_type not in _LLAMA_SHAPED or config._attn_implementation != ROW_ATTENTION:
        return False
    layers = model.get_decoder().layers
    return all(getattr(layer.self_attn, "sliding_window", None) is None for layer in layers) and (
        len(layers) == config.num_hidden_layers
    )


class StepAbandoned(Exception):
    """A step stopped between two layers because nobody waits for its tokens; its cache is half updated."""


def decode_step(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    cache,
    starts: list[int],
    unwanted: Callable[[], bool] | None = None,
    project: bool = True,
) -> torch.Tensor:
    """Logits [rows, new, vocabulary] for `new` tokens per row (`tokens` at `positions`, both [rows, new]),
    appending each layer's keys and values to `cache` (a DynamicCache of left-padded rows). `starts[row]`
    is the index of the row's first real key (0 without padding). Each token is computed as a one-token
    step computes it, as a row of its own: a row's later tokens (guesses checked in the same step,
    core.engine.prompt_lookup) see its earlier ones through the cache, and nothing else. `unwanted`, when
    given, is asked before each layer: when it says nobody waits for the tokens, the step raises StepAbandoned.
    Without `project`, the step stops before the vocabulary projection: the final norm's output [rows, new,
    hidden] (core.engine.screened_head projects it for a greedy step)."""
    decoder = model.get_decoder()
    rows, new = tokens.shape
    slots = rows * new  # one per token: a row of the products and of the attention
    rotate = sys.modules[type(decoder.layers[0].self_attn).__module__].apply_rotary_pos_emb  # the model's own
    hidden = decoder.embed_tokens(tokens.reshape(slots, 1))
    cos, sin = decoder.rotary_emb(hidden, position_ids=positions.reshape(slots, 1))
    for index, layer in enumerate(decoder.layers):
        if unwanted is not None and unwanted():
            raise StepAbandoned
        attention, mlp = layer.self_attn, layer.mlp
        residual = hidden
        heads = (slots, 1, -1, attention.head_dim)
        query, keys, values = linear_outputs(
            layer.input_layernorm(hidden), attention.q_proj, attention.k_proj, attention.v_proj
        )
        query, keys = rotate(query.view(heads).transpose(1, 2), keys.view(heads).transpose(1, 2), cos, sin)
        keys, values = cache.layers[index].update(
            _per_row(keys, rows), _per_row(values.view(heads).transpose(1, 2), rows)
        )
        attended = attend_rows(attention, query, keys, values, starts, dropout=0.0, scaling=attention.scaling)
        (projected,) = linear_outputs(attended.reshape(slots, 1, -1).contiguous(), attention.o_proj)
        hidden = residual + projected
        residual = hidden
        gate, up = linear_outputs(layer.post_attention_layernorm(hidden), mlp.gate_proj, mlp.up_proj)
        (down,) = linear_outputs(mlp.act_fn(gate) * up, mlp.down_proj)
        hidden = residual + down
    states = decoder.norm(hidden)
    if not project:
        return states.view(rows, new, -1)
    (logits,) = linear_outputs(states, model.lm_head)
    return logits.view(rows, new, -1)


def _per_row(states: torch.Tensor, rows: int) -> torch.Tensor:
    """A step's keys or values, one slot each [slots, heads, 1, dim], as the cache takes them: [rows, heads,
    new, dim] (with one token per row, the same tensor)."""
    if len(states) == rows:
        return states
    return states.view(rows, -1, *states.shape[1:]).squeeze(3).transpose(1, 2)


def linear_outputs(x: torch.Tensor, *layers: torch.nn.Module) -> list[torch.Tensor]:
    """Each layer's output for `x`, as the layer's own call gives it (its forward hooks included: the
    LoRA rows' deltas). Layers that share one packed product (core.engine.shared_products) get views
    of a single product, without the copy of each layer's columns or the module's call machinery."""
    product = getattr(layers[0], "shared_product", None)
    if (
        product is None
        or any(getattr(layer, "shared_product", None) is not product or layer._forward_pre_hooks for layer in layers)
        or len(product.members) != len(layers)
    ):
        return [layer(x) for layer in layers]
    out = product.product(x)
    outputs = []
    for layer in layers:
        output = out[..., layer.product_columns]
        for hook in layer._forward_hooks.values():
            hooked = hook(layer, (x,), output)
            output = output if hooked is None else hooked
        outputs.append(output)
    return outputs
