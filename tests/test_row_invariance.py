"""A row's answer does not depend on its batch, in float32, in bfloat16 and with int8 weights: each linear layer's product
and each row's attention are the same alone and among other rows (core/engine/row_products.py,
core/engine/row_attention.py), so the four modes batched (compare) equal each mode alone (its page).

The session's Lab runs the dtype `auto` picks on this CPU (test_engine_worker covers it); the
end-to-end test here runs the other one, so both paths are proven on every machine."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from core.common.vocabulary import Decoding
from core.engine import row_products
from core.engine.engine import use_batch_invariant_kernels
from core.engine.int8_weights import quantize_linear_layers
from core.engine.model_store import model_source
from core.lab import Lab
from tests.test_engine_worker import QUESTIONS, mode_rows, run_rows

pytestmark = pytest.mark.model

DTYPES = [torch.float32, torch.bfloat16]


@pytest.mark.parametrize(
    ("dtype", "quantization"),
    [(torch.float32, "none"), (torch.bfloat16, "none"), (torch.float32, "int8")],
    ids=["float32", "bfloat16", "int8"],
)
def test_each_layers_product_for_a_row_is_the_same_alone_as_among_others(lab, dtype, quantization):
    source, _ = model_source(lab.settings)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).eval()
    layers = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    inputs: dict[str, torch.Tensor] = {}  # real activations: each layer's input for six prompt tokens
    hooks = [
        layer.register_forward_hook(lambda _m, args, _o, name=name: inputs.__setitem__(name, args[0][0, :6]))
        for name, layer in layers.items()
    ]
    with torch.inference_mode():
        model(input_ids=torch.tensor([lab.engine.tokenizer.encode("Where is my order? It left on Monday.")]))
    for hook in hooks:
        hook.remove()
    with_engine_kernels(model, quantization)

    differing = set()
    with torch.inference_mode():
        for name, layer in layers.items():
            rows = inputs[name][:, None, :]  # a decode step: one token per row
            alone = layer(rows[:1])[0]
            for batch in (rows[:2], rows[:3], rows[:5], torch.cat([rows[1:4], rows[:1]])):
                position = next(i for i in range(len(batch)) if torch.equal(batch[i], rows[0]))
                if not torch.equal(layer(batch)[position], alone):
                    differing.add(name.split(".")[-1])
    assert not differing


def with_engine_kernels(model, quantization: str) -> None:
    """The engine's kernels: every layer packed for oneDNN in float32, and in bfloat16 on a CPU with native
    bf16; else pairs of rows."""
    if quantization == "int8":
        quantize_linear_layers(model)
    use_batch_invariant_kernels(model)
    packed = [m for m in model.modules() if isinstance(getattr(m, "shared_product", None), row_products.OneDnnProduct)]
    float_layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.weight is not None]
    if quantization == "none" and row_products.packs_for_onednn(model.dtype):  # the path under test is the one taken
        assert packed and not float_layers
    else:
        assert not packed


def assert_batched_equals_alone(lab: Lab, sample) -> None:
    decoding = Decoding(max_new_tokens=32)
    for question in QUESTIONS:
        rows = mode_rows(lab, sample, question)
        alone = {mode: run_rows(lab.engine, [row], decoding)[0] for mode, row in rows.items()}
        assert alone["base"] != alone["finetuned"]  # the adapter changes the answer: the check can fail
        batched = run_rows(lab.engine, list(rows.values()), decoding)
        assert dict(zip(rows, batched, strict=True)) == alone


def test_the_four_modes_batched_equal_each_mode_alone_in_the_dtype_auto_did_not_pick(lab, sample):
    other = "float32" if lab.engine.dtype == torch.bfloat16 else "bfloat16"
    other_lab = Lab(lab.settings.model_copy(update={"dtype": other}))
    assert str(other_lab.engine.dtype) == f"torch.{other}"
    assert_batched_equals_alone(other_lab, sample)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_layers_packed_for_onednn_give_their_pages_of_the_model_file_back(lab, sample, dtype):
    if not row_products.packs_for_onednn(dtype):
        pytest.skip("bfloat16 runs on oneDNN only on a CPU with native bf16")
    name = str(dtype).removeprefix("torch.")
    packed_lab = lab if lab.engine.dtype == dtype else Lab(lab.settings.model_copy(update={"dtype": name}))
    model = packed_lab.engine.model
    head = model.get_output_embeddings()  # tied to the embedding (SmolLM2)
    if dtype == torch.float32:  # screened (core.engine.screened_head): packed when a full product is first asked for
        assert head.greedy_screen
    else:
        assert head.shared_product
    packed_lab.ask(sample, "base", "Where is my order?").collect()  # reads the embedding's rows it needs
    # what stays resident of the model file is at most what is still read there: the embedding, the norms
    still_read = sum(p.numel() * p.element_size() for p in model.parameters())
    size = dtype.itemsize
    packed = sum(m.in_features * m.out_features * size for m in model.modules() if hasattr(m, "shared_product"))
    assert packed > still_read and resident_file_bytes(model.get_input_embeddings().weight) <= still_read + 2**20


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "bfloat16"])
def test_sibling_layers_share_one_onednn_product_and_each_gets_its_own_columns(lab, dtype):
    """q, k and v (and gate and up) are packed as one matrix, one call a step: each layer's output is still
    its own weight's product (a wrong slice of the set's columns would be another layer's)."""
    if not row_products.packs_for_onednn(dtype):
        pytest.skip("bfloat16 runs on oneDNN only on a CPU with native bf16")
    source, _ = model_source(lab.settings)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).eval()
    attention, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    siblings = [attention.q_proj, attention.k_proj, attention.v_proj, mlp.gate_proj, mlp.up_proj]
    weights = [layer.weight.detach().clone() for layer in siblings]
    use_batch_invariant_kernels(model)
    assert attention.q_proj.shared_product is attention.k_proj.shared_product is attention.v_proj.shared_product
    assert mlp.gate_proj.shared_product is mlp.up_proj.shared_product is not attention.q_proj.shared_product
    x = torch.randn(3, 1, weights[0].shape[1], generator=torch.Generator().manual_seed(0)).to(dtype)
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    with torch.inference_mode():
        for layer, weight in zip(siblings, weights, strict=True):
            expected = torch.nn.functional.linear(x.float(), weight.float())
            torch.testing.assert_close(layer(x).float(), expected, atol=tolerance, rtol=tolerance)


def resident_file_bytes(tensor: torch.Tensor) -> int:
    """Resident bytes of the mapped file that holds `tensor` (/proc/self/smaps)."""
    address, inside = tensor.data_ptr(), False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                low, high = (int(value, 16) for value in fields[0].split("-"))
                inside = low <= address < high
            elif inside and fields[0] == "Rss:":
                return int(fields[1]) * 1024
    raise AssertionError("the tensor is not in a mapped file")


def test_the_four_modes_batched_equal_each_mode_alone_with_int8_weights(lab, sample):
    int8_lab = Lab(lab.settings.model_copy(update={"quantization": "int8"}))
    assert int8_lab.engine.quantization == "int8"
    assert_batched_equals_alone(int8_lab, sample)


@pytest.mark.parametrize(
    ("dtype", "quantization"),
    [(torch.float32, "none"), (torch.bfloat16, "none"), (torch.float32, "int8")],
    ids=["float32", "bfloat16", "int8"],
)
def test_a_rows_logits_do_not_depend_on_the_thread_count(lab, sample, dtype, quantization):
    """The app's engine changes its thread count when a job starts or ends (core/engine/cpu_budget.py)."""
    source, _ = model_source(lab.settings)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).eval()
    with_engine_kernels(model, quantization)
    prompt = lab.engine.encode([{"role": "user", "content": "Where is my order? It left on Monday."}], 8)[0]
    threads = torch.get_num_threads()
    logits = {}
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.inference_mode():
                prefill = model(input_ids=torch.tensor([prompt[:-1]]), use_cache=True)
                step = model(input_ids=torch.tensor([[prompt[-1]]]), past_key_values=prefill.past_key_values)
            logits[count] = (prefill.logits, step.logits)
    finally:
        torch.set_num_threads(threads)
    assert [torch.equal(one, two) for one, two in zip(logits[1], logits[2], strict=True)] == [True, True]
