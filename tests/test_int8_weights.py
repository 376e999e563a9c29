"""Int8 weights (core/engine/int8_weights.py) on a real nn.Linear: close to the float layer, no float
copy kept, and a decode row's result independent of the other rows in its batch."""

import torch

from core.engine.int8_weights import int8_weights, quantize_linear_layers


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
