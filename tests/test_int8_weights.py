"""Int8 weights (core/engine/int8_weights.py) on a real nn.Linear: close to the float layer, no float
copy kept, and a decode row's result independent of the other rows in its batch."""

import pytest
import torch

from core.engine.int8_weights import LEVELS, int8_weights, quantize_linear_layers


def _layer(seed: int = 0) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """A float layer and its int8 twin, with the scale of the bundled models' weights."""
    torch.manual_seed(seed)
    float_layer = torch.nn.Linear(576, 1536)
    torch.nn.init.normal_(float_layer.weight, std=0.02)
    int8_layer = torch.nn.Linear(576, 1536)
    int8_layer.load_state_dict(float_layer.state_dict())
    assert quantize_linear_layers(torch.nn.Sequential(int8_layer)) == 1
    return float_layer, int8_layer


def test_each_weight_is_within_half_a_step_of_its_float_value():
    float_layer, int8_layer = _layer()
    int8, scale = int8_weights(int8_layer)
    error = (int8.float() * scale[:, None] - float_layer.weight).abs()
    assert (error <= scale[:, None] / 2 + 1e-9).all()


def test_a_quantized_layer_keeps_no_float_weight():
    _, int8_layer = _layer()
    assert int8_layer.weight is None
    assert int8_weights(int8_layer)[0].dtype == torch.int8
    assert not [name for name, _ in int8_layer.named_buffers()]  # one copy: the packed one


def test_decode_and_prompt_outputs_stay_close_to_the_float_layer():
    float_layer, int8_layer = _layer()
    with torch.inference_mode():
        for shape in ((3, 1, 576), (1, 7, 576)):  # three decode rows; one prompt of seven tokens
            x = torch.randn(shape)
            expected = float_layer(x)
            relative = (int8_layer(x) - expected).norm() / expected.norm()
            assert relative < 0.02, (shape, relative)


def test_the_product_sums_each_rows_integers_exactly():
    """Each row, rounded to integers on its own range, times the int8 weights: fbgemm's quantization must
    take the integers as they are and its sums must not saturate (8-bit inputs only where the CPU has
    VNNI), so the output is float64's product to float32 rounding."""
    torch.manual_seed(2)
    int8_layer = torch.nn.Linear(576, 1536)
    torch.nn.init.normal_(int8_layer.weight, std=0.02)
    with torch.no_grad():
        int8_layer.weight[:, :8] = 0.1  # every row's largest weight: int8 127 in the first columns
    quantize_linear_layers(torch.nn.Sequential(int8_layer))
    int8, scale = int8_weights(int8_layer)
    rows = torch.randn(5, 576) * torch.logspace(-2, 2, 5)[:, None]
    rows[:, :8] = rows.abs().amax(dim=1, keepdim=True)  # top inputs times top weights: where 16-bit pairs saturate
    with torch.inference_mode():
        got = int8_layer(rows[:, None, :])[:, 0].double()
    row_scale = rows.abs().amax(dim=1, keepdim=True).double() / LEVELS
    integers = torch.round(rows.double() / row_scale)
    expected = (integers @ int8.double().t()) * scale.double() * row_scale + int8_layer.bias.double()
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6 * expected.abs().max().item())


def test_a_row_of_zeros_gives_the_bias():
    _, int8_layer = _layer()
    rows = torch.stack([torch.zeros(576), torch.randn(576)])[:, None, :]
    with torch.inference_mode():
        assert torch.equal(int8_layer(rows)[0, 0], int8_layer.bias)


def test_a_decode_rows_result_does_not_depend_on_the_other_rows():
    """Rows of very different ranges: one range for the whole batch would coarsen the small row."""
    _, int8_layer = _layer()
    small, large = torch.randn(576) * 0.01, torch.randn(576) * 50
    with torch.inference_mode():
        alone = int8_layer(small[None, None, :])[0]
        for batch in ([small, large], [large, small], [large, small, large, small]):
            rows = torch.stack(batch)[:, None, :]
            position = next(i for i, row in enumerate(batch) if row is small)
            assert torch.equal(int8_layer(rows)[position], alone)


def test_a_prompt_tokens_result_does_not_depend_on_the_other_tokens():
    _, int8_layer = _layer()
    tokens = torch.randn(7, 576) * torch.logspace(-2, 2, 7)[:, None]
    with torch.inference_mode():
        together = int8_layer(tokens[None])[0]
        for index in range(7):
            assert torch.equal(together[index], int8_layer(tokens[index][None, None, :])[0, 0])


def _attention_projections(bias: bool) -> torch.nn.Module:
    """q, k and v projections of different widths over one input, as in a decoder block."""
    torch.manual_seed(1)
    block = torch.nn.Module()
    block.q_proj, block.k_proj, block.v_proj = (torch.nn.Linear(576, width, bias=bias) for width in (576, 192, 192))
    for layer in (block.q_proj, block.k_proj, block.v_proj):
        torch.nn.init.normal_(layer.weight, std=0.02)
    return block


@pytest.mark.parametrize("bias", [True, False], ids=["qwen-like biases", "no biases"])
def test_sibling_layers_share_one_product_and_give_what_each_gives_packed_alone(bias):
    shared, alone = _attention_projections(bias), _attention_projections(bias)
    assert quantize_linear_layers(shared) == 3
    assert shared.q_proj.shared_product is shared.k_proj.shared_product is shared.v_proj.shared_product
    for layer in (alone.q_proj, alone.k_proj, alone.v_proj):  # each packed on its own
        assert quantize_linear_layers(torch.nn.Sequential(layer)) == 1
    assert alone.q_proj.shared_product is not alone.k_proj.shared_product
    with torch.inference_mode():
        for shape in ((3, 1, 576), (1, 7, 576)):
            x = torch.randn(shape)
            for name in ("q_proj", "k_proj", "v_proj"):
                assert torch.equal(getattr(shared, name)(x), getattr(alone, name)(x)), (shape, name)
            # the other order, and a layer asked twice for one input, still give each layer its own columns
            assert torch.equal(shared.v_proj(x), alone.v_proj(x))
            assert torch.equal(shared.v_proj(x), alone.v_proj(x))
            assert torch.equal(shared.q_proj(x), alone.q_proj(x))
    for name in ("q_proj", "k_proj", "v_proj"):
        assert torch.equal(int8_weights(getattr(shared, name))[0], int8_weights(getattr(alone, name))[0])


def test_a_cached_quantization_gives_the_same_layers_and_a_bad_cache_is_rewritten(tmp_path):
    cache = tmp_path / "int8" / "weights.safetensors"
    x = torch.randn(3, 1, 576)
    outputs = []
    for _ in range(2):  # the first run writes the cache, the second reads it
        block = _attention_projections(bias=True)
        assert quantize_linear_layers(block, cache) == 3
        assert cache.exists()
        with torch.inference_mode():
            outputs.append([layer(x) for layer in (block.q_proj, block.k_proj, block.v_proj)])
    assert all(torch.equal(first, second) for first, second in zip(*outputs, strict=True))

    cache.write_bytes(b"not a safetensors file")
    block = _attention_projections(bias=True)
    assert quantize_linear_layers(block, cache) == 3
    with torch.inference_mode():
        assert torch.equal(block.q_proj(x), outputs[0][0])
    assert cache.stat().st_size > 1000  # rewritten whole


def test_a_cache_of_another_shape_is_not_used(tmp_path):
    cache = tmp_path / "weights.safetensors"
    quantize_linear_layers(_attention_projections(bias=True), cache)
    other = torch.nn.Module()
    other.q_proj, other.k_proj, other.v_proj = (torch.nn.Linear(576, width) for width in (576, 96, 96))
    reference = torch.nn.Module()
    reference.q_proj, reference.k_proj, reference.v_proj = (torch.nn.Linear(576, width) for width in (576, 96, 96))
    reference.load_state_dict(other.state_dict())
    quantize_linear_layers(other, cache)
    quantize_linear_layers(reference)
    x = torch.randn(2, 1, 576)
    with torch.inference_mode():
        assert torch.equal(other.k_proj(x), reference.k_proj(x))
