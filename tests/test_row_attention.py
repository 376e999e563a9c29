"""A decode row's attention (core/engine/row_attention.py): eager attention's arithmetic in float32, which the
suite's equality tests cannot check on their own (the engine and its reference both use it), checked here
against PyTorch's attention, with query heads grouped over their key heads as Llama and Qwen2 group them."""

import pytest
import torch
import torch.nn.functional as F

from core.engine.row_attention import attend_rows


@pytest.mark.parametrize(("heads", "key_heads"), [(9, 3), (14, 2), (4, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_each_rows_attention_is_pytorchs_over_its_own_keys(heads, key_heads, dtype):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, heads, 1, 64, generator=generator).to(dtype)
    keys = torch.randn(3, key_heads, 40, 64, generator=generator).to(dtype)
    values = torch.randn(3, key_heads, 40, 64, generator=generator).to(dtype)
    starts = [0, 7, 39]  # left padding: each row's keys begin here
    module = torch.nn.Module()  # no sliding window, no sinks

    got = attend_rows(module, query, keys, values, starts, scaling=0.125)

    assert got.shape == (3, 1, heads, 64)  # the layout transformers' SDPA forward returns
    for row, start in enumerate(starts):
        expected = F.scaled_dot_product_attention(
            query[row : row + 1].float(),
            keys[row : row + 1, :, start:].float(),
            values[row : row + 1, :, start:].float(),
            scale=0.125,
            enable_gqa=True,
        ).transpose(1, 2)
        # bfloat16: float32 arithmetic on the bfloat16 values, rounded once at the end (within one step of 8 bits)
        tolerance = 1e-5 if dtype == torch.float32 else 2**-7
        torch.testing.assert_close(got[row : row + 1].float(), expected, atol=1e-5, rtol=tolerance)


def test_a_rows_attention_is_the_same_with_one_thread_and_two():
    """The engine changes its thread count when a training job starts (core/engine/cpu_budget.py)."""
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(1, 14, 1, 64, generator=generator)
    keys, values = torch.randn(2, 1, 2, 1500, 64, generator=generator)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(attend_rows(torch.nn.Module(), query, keys, values, [0], scaling=0.125))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_several_new_tokens_of_a_row_each_attend_as_that_token_alone(dtype):
    """A row's guessed tokens checked in one step (core/engine/prompt_lookup.py): each slot sees the keys up
    to its own, and gets exactly what the same token gets alone in a step over those keys."""
    generator = torch.Generator().manual_seed(2)
    query = torch.randn(6, 14, 1, 64, generator=generator).to(dtype)  # two rows, three tokens each
    keys = torch.randn(2, 2, 50, 64, generator=generator).to(dtype)
    values = torch.randn(2, 2, 50, 64, generator=generator).to(dtype)
    starts = [0, 9]
    module = torch.nn.Module()

    got = attend_rows(module, query, keys, values, starts, scaling=0.125)

    for slot in range(6):
        row, end = slot // 3, 50 - (2 - slot % 3)
        alone = attend_rows(
            module,
            query[slot : slot + 1],
            keys[row : row + 1, :, :end],
            values[row : row + 1, :, :end],
            [starts[row]],
            scaling=0.125,
        )
        assert torch.equal(got[slot : slot + 1], alone)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_keys_read_in_place_from_the_batchs_float32_buffer_give_what_a_tensor_of_their_own_gives(dtype):
    """The decode batch keeps its keys and values in float32 buffers with room to grow
    (core/engine/batch_decoder.py) and a row reads its keys there as a strided view; generate()'s cache holds
    them in the model's dtype, one tensor of their own. Both must give a row the same bits, at every key count."""
    generator = torch.Generator().manual_seed(3)
    module = torch.nn.Module()
    for length in [*range(1, 70, 3), 255, 256, 257, 511, 700]:
        query = torch.randn(2, 14, 1, 64, generator=generator).to(dtype)
        keys = torch.randn(2, 2, length, 64, generator=generator).to(dtype)
        values = torch.randn(2, 2, length, 64, generator=generator).to(dtype)
        starts = [0, length // 2]
        key_buffer = torch.zeros(2, 2, length + 37, 64)
        value_buffer = torch.zeros(2, 2, length + 37, 64)
        key_buffer[:, :, :length], value_buffer[:, :, :length] = keys, values

        in_place = attend_rows(module, query, key_buffer[:, :, :length], value_buffer[:, :, :length], starts)
        own = attend_rows(module, query, keys, values, starts)

        assert in_place.dtype == dtype
        assert torch.equal(in_place, own), length
