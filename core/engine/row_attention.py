"""Attention for decode steps computed one row at a time, so a row's result never depends on its batch.

In a batch, each row's keys are left-padded to the batch's width and masked, and its query is a
slice of the batch's: the kernel then adds up in another order or takes another path, and the row's
output differs in the last bits from the same row alone. In bfloat16 that changes a greedy token now
and then (hooks on every module found the first difference in layer 0's attention output). Here each
row of a decode step attends over its own keys only, with the call it gets alone, so a compare column
equals its mode page and a user's answer equals their answer when nobody else is asking. Prefill (one
prompt at a time) takes transformers' own SDPA path unchanged.
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
    """A decode step's attention, each row over its own keys from `starts[row]` on, with the call it gets alone."""
    outputs = []
    for row, start in enumerate(starts):
        # Contiguous copies, as a row alone has: the same values in a strided query gave another bf16 output.
        keys = key[row : row + 1, :, start:].contiguous()
        values = value[row : row + 1, :, start:].contiguous()
        output, _ = sdpa_attention_forward(module, query[row : row + 1].contiguous(), keys, values, None, **kwargs)
        outputs.append(output)
    return torch.cat(outputs)


def use_row_attention(model: torch.nn.Module) -> None:
    """Makes `model` compute decode-step attention row by row (masks are built as for SDPA)."""
    AttentionInterface.register(ROW_ATTENTION, row_by_row_sdpa)
    AttentionMaskInterface.register(ROW_ATTENTION, sdpa_mask)
    model.config._attn_implementation = ROW_ATTENTION
