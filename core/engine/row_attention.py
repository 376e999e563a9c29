"""Attention for decode steps computed one row at a time, so a row's result never depends on its batch.

In a batch, each row's keys are left-padded to the batch's width and masked, and its query is a
slice of the batch's: the kernel then adds up in another order or takes another path, and the row's
output differs in the last bits from the same row alone. In bfloat16 that changes a greedy token now
and then (hooks on every module found the first difference in layer 0's attention output). Here each
row of a decode step attends over its own keys only, with the call it gets alone, so a compare column
equals its mode page and a user's answer equals their answer when nobody else is asking. Prefill (one
prompt at a time) takes transformers' own SDPA path unchanged.

A decode row's attention is eager attention's arithmetic (scores, a softmax, the weighted values), not
PyTorch's fused CPU kernel: for one query that kernel's float32 sums depend on the thread count (an
AMD CPU, 1 against 2 threads), and the engine's thread count changes when a training job starts. Two
matrix products over the row's own keys gave the same result with 1 and 2 threads. They run in float32
in every dtype, rounded once at the end: in bfloat16 they ran on oneDNN, which builds a kernel for each
new shape, and a row's key count grows every step (637 us a product against 37 at a fixed count; float32
on MKL builds none). Float32 models compute exactly as before. The decode batch keeps its keys and values
in float32 (core.engine.batch_decoder), so a row reads them where they are, without a copy each step.
"""

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ROW_ATTENTION = "lab_row_sdpa"


def row_by_row_sdpa(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA forward, called per row for a decode step of several rows."""
    if query.shape[2] != 1:  # a prompt's prefill
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    starts = [0] * query.shape[0]
    if attention_mask is not None:  # left padding: the row's keys are the last ones
        valid = attention_mask[:, 0, -1]
        valid = valid if valid.dtype == torch.bool else valid == 0
        starts = valid.long().argmax(dim=1).tolist()
    return attend_rows(module, query, key, value, starts, **kwargs), None


def attend_rows(module, query, key, value, starts: list[int], **kwargs) -> torch.Tensor:
    """A decode step's attention, each row over its own keys from `starts[row]` on, with the call it gets
    alone. Returns [rows, 1, heads, dim], the layout SDPA's forward returns. With several new tokens a row
    (`query` holds `new` slots per row of `key`, a row's in order; core.engine.decode_step), each slot
    attends over the keys up to its own, as that token alone in a step would."""
    new = len(query) // len(key)
    total = key.shape[2]
    spans = [(slot // new, starts[slot // new], total - (new - 1 - slot % new)) for slot in range(len(query))]
    if kwargs.get("sliding_window") or getattr(module, "sinks", None) is not None:  # eager arithmetic lacks these
        return torch.cat(
            [_sdpa_row(module, query, key, value, slot, span, **kwargs) for slot, span in enumerate(spans)]
        )
    slots, heads, _, dim = query.shape
    key_heads = key.shape[1]
    scaling = kwargs.get("scaling") or dim**-0.5
    # every slot's query heads grouped over their key head, converted once; the output summed in float32
    # and rounded once at the end
    grouped = query.to(torch.float32, memory_format=torch.contiguous_format).view(slots, key_heads, -1, dim)
    output = torch.empty_like(grouped)
    for slot, (row, start, end) in enumerate(spans):
        keys, values = _float32(key[row, :, start:end]), _float32(value[row, :, start:end])
        _one_query(grouped[slot], keys, values, scaling, out=output[slot])
    return output.view(slots, 1, heads, dim).to(query.dtype)


def _float32(states: torch.Tensor) -> torch.Tensor:
    """`states` in float32: themselves when they are (the decode batch keeps its cache so,
    core.engine.batch_decoder), else a copy. A row's keys in the batch's buffer are a strided view; its
    product's sums are those of a contiguous copy (tests/test_row_attention.py checks it)."""
    return states if states.dtype == torch.float32 else states.to(torch.float32)


def _sdpa_row(module, query, key, value, slot: int, span: tuple[int, int, int], **kwargs) -> torch.Tensor:
    row, start, end = span
    keys = key[row : row + 1, :, start:end].contiguous()
    values = value[row : row + 1, :, start:end].contiguous()
    output, _ = sdpa_attention_forward(module, query[slot : slot + 1].contiguous(), keys, values, None, **kwargs)
    return output


def _one_query(
    grouped: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float, out: torch.Tensor
) -> None:
    """One row's query heads grouped over their key head [key heads, group, dim] (head h reads key head
    h // group, instead of copying the keys for each) over its keys and values [key heads, n, dim], as
    eager attention computes it: scores, a softmax, the weighted values; all in float32. Writes `out`
    [key heads, group, dim]."""
    scores = torch.bmm(grouped, keys.transpose(1, 2)).mul_(scaling)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
    torch.bmm(weights, values, out=out)


def use_row_attention(model: torch.nn.Module) -> None:
    """Makes `model` compute decode-step attention row by row (masks are built as for SDPA)."""
    AttentionInterface.register(ROW_ATTENTION, row_by_row_sdpa)
    AttentionMaskInterface.register(ROW_ATTENTION, sdpa_mask)
    model.config._attn_implementation = ROW_ATTENTION
