"""A prefill keeps only keys and values: its top decoder layer computes those, not the output nobody reads.

The engine prefills all of a prompt but its last token and keeps only the cache (core.engine.batch_decoder):
the last token runs in the next decode step. Of the top decoder layer, then, only the keys and values are
used; its attention, output projection and MLP over the prompt (nearly all of the layer: 1/24 of a Qwen
prefill) were thrown away. Within `keys_and_values_only`, that layer computes its keys and values with the
modules and functions its own forward uses (norm; q, k and v projections with their LoRA hooks; the
model's rotary embedding; the cache's update), so the cache is bit for bit the same, and it returns its
input unchanged: the logits such a prefill computes mean nothing, and nothing reads them. For Llama- and
Qwen2-shaped decoders (core.engine.decode_step.fits_decode_step).
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def keys_and_values_only(layer: torch.nn.Module) -> Iterator[None]:
    """Within: the decoder layer `layer` appends its keys and values to the cache and passes its input on."""
    attention = layer.self_attn
    rotate = sys.modules[type(attention).__module__].apply_rotary_pos_emb  # the model's own

    def forward(hidden_states, position_embeddings=None, past_key_values=None, **_kwargs):
        normed = layer.input_layernorm(hidden_states)
        heads = (*normed.shape[:-1], -1, attention.head_dim)
        # q too: the three share one product (core.engine.shared_products), which waits for all of them
        query = attention.q_proj(normed).view(heads).transpose(1, 2)
        keys = attention.k_proj(normed).view(heads).transpose(1, 2)
        values = attention.v_proj(normed).view(heads).transpose(1, 2)
        _, keys = rotate(query, keys, *position_embeddings)
        past_key_values.update(keys, values, attention.layer_idx)
        return hidden_states

    layer.forward = forward  # an instance attribute: the module's hooks still run around it
    try:
        yield
    finally:
        del layer.forward
