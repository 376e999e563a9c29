"""The files of a real Lab-trained adapter have what vLLM needs to serve it, and deploy/vllm/serve.sh builds the command.

vLLM is not installed here: the rules below are the ones its loader applies (vllm/lora/peft_helper.py,
vllm/lora/utils.py, the Llama model's packed modules), written out; see deploy/vllm/README.md.
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from safetensors import safe_open

from core.engine.model_store import model_source
from tests.conftest import ROOT

SERVE = ROOT / "deploy" / "vllm" / "serve.sh"
VLLM_MAX_LORA_RANKS = {1, 8, 16, 32, 64, 128, 256, 320, 512}  # vllm.config.lora.MaxLoRARanks
# Llama (SmolLM2's architecture): q/k/v are packed into qkv_proj and gate/up into gate_up_proj, which take
# adapters trained on the separate layers; embed_tokens/lm_head would need extra vocabulary, which the Lab never adds.
LLAMA_MODULES = {"self_attn": {"q_proj", "k_proj", "v_proj", "o_proj"}, "mlp": {"gate_proj", "up_proj", "down_proj"}}
# The names vLLM parses: base_model.model.<module path>.lora_A|lora_B.weight
TENSOR = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


def layer_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """(in, out) features of each adaptable layer of a Llama model."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    return {
        "q_proj": (hidden, q),
        "k_proj": (hidden, kv),
        "v_proj": (hidden, kv),
        "o_proj": (q, hidden),
        "gate_proj": (hidden, inner),
        "up_proj": (hidden, inner),
        "down_proj": (inner, hidden),
    }


@pytest.mark.model
def test_trained_adapter_has_what_vllm_loads(lab, sample):
    folder = lab.active_adapter(sample).path
    files = {p.name for p in folder.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "lab_adapter.json"} <= files
    assert "adapter_model.bin" not in files  # vLLM reads safetensors first; the Lab never writes a pickle
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert config["r"] in VLLM_MAX_LORA_RANKS and not config.get("rank_pattern")
    # The Lab asks for "all-linear" (spelled out as the blocks' linear layers when only some blocks are
    # adapted); the saved config must name the layers it became, each one vLLM can adapt, not the string.
    targets = config["target_modules"]
    assert isinstance(targets, list) and set(targets) == set().union(*LLAMA_MODULES.values())
    # What vLLM's PEFTHelper refuses: extra saved modules (embeddings, heads), DoRA, trained biases.
    assert not config.get("modules_to_save") and not config.get("trainable_token_indices")
    assert not config.get("use_dora") and config.get("bias", "none") == "none" and not config.get("lora_bias")

    base = json.loads((Path(model_source(lab.settings)[0]) / "config.json").read_text())
    assert base["architectures"] == ["LlamaForCausalLM"]
    shapes, rank = layer_shapes(base), config["r"]
    seen = set()
    with safe_open(folder / "adapter_model.safetensors", framework="pt") as weights:
        for key in weights.keys():  # noqa: SIM118 (safe_open has keys() but is not iterable)
            match = TENSOR.match(key)
            assert match, f"{key} is not a LoRA weight name vLLM parses"
            layer, block, module, half = match.groups()
            assert module in LLAMA_MODULES[block] and module in targets, key
            fan_in, fan_out = shapes[module]
            expected_shape = (rank, fan_in) if half == "A" else (fan_out, rank)
            assert tuple(weights.get_slice(key).get_shape()) == expected_shape, key
            seen.add((int(layer), module, half))
    # Every target layer of every adapted block (the upper half by default) has both halves, nothing else.
    blocks = config.get("layers_to_transform") or range(base["num_hidden_layers"])
    assert set(blocks) <= set(range(base["num_hidden_layers"]))
    expected = {(n, m, h) for n in blocks for m in targets for h in "AB"}
    assert seen == expected


def adapter_folder(root: Path, scenario: str, name: str, rank: int, files=("config", "weights", "lab")) -> Path:
    folder = root / "adapters" / scenario / name
    folder.mkdir(parents=True)
    if "config" in files:
        (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    if "weights" in files:
        (folder / "adapter_model.safetensors").write_bytes(b"")
    if "lab" in files:
        (folder / "lab_adapter.json").write_text(json.dumps({"scenario": scenario}))
    return folder


CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("LAB_VLLM_")}


def dry_run(data_dir: Path, **env) -> tuple[list[str], str]:
    done = subprocess.run(
        ["bash", str(SERVE), "--dry-run", "--max-model-len", "4096"],
        env={**CLEAN_ENV, "LAB_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return shlex.split(done.stdout), done.stderr


@pytest.mark.process
def test_serve_script_dry_run_builds_the_vllm_command(tmp_path):
    v1 = adapter_folder(tmp_path, "demo", "v1", rank=32)
    other = adapter_folder(tmp_path, "other", "a", rank=8)
    (tmp_path / "adapters" / "demo" / "ACTIVE").write_text("v1")
    adapter_folder(tmp_path, "demo", ".staging-x", rank=16)  # a training job still writing: not served
    adapter_folder(tmp_path, "demo", "partial", rank=16, files=("config",))  # incomplete: not served

    command, summary = dry_run(tmp_path)
    assert command[:3] == ["vllm", "serve", str(tmp_path / "models" / "SmolLM2-135M-Instruct")]
    assert "--enable-lora" in command
    options = dict(zip(command, command[1:], strict=False))
    assert options["--served-model-name"] == "SmolLM2-135M-Instruct"
    assert options["--max-lora-rank"] == "32" and options["--max-loras"] == "2"
    start = command.index("--lora-modules") + 1
    assert command[start : start + 2] == [f"demo--v1={v1}", f"other--a={other}"]
    assert command[-2:] == ["--max-model-len", "4096"]  # extra flags go through to vllm serve
    assert "make prepare" in summary  # the data dir has no converted model
    assert "LAB_OPENAI_MODEL: SmolLM2-135M-Instruct" in summary and "demo--v1 (rank 32, active in the Lab)" in summary

    command, _ = dry_run(tmp_path, LAB_VLLM_MODEL="HuggingFaceTB/SmolLM2-135M-Instruct", LAB_VLLM_SCENARIO="other")
    assert command[2] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert dict(zip(command, command[1:], strict=False))["--served-model-name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    start = command.index("--lora-modules") + 1
    assert command[start : start + 2] == [f"other--a={other}", "--max-model-len"]
    assert dict(zip(command, command[1:], strict=False))["--max-lora-rank"] == "8"
