"""Where and when a benchmark ran: date, commit and machine, recorded with every result."""

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from core.engine.cpu_budget import cpu_has_int8_dot_products, cpu_has_native_bf16

ROOT = Path(__file__).resolve().parent.parent
# How a run takes the kernels of an older CPU on this one: PyTorch's own, oneDNN's and MKL's
KERNEL_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def run_info() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores",
        "cpu": cpu_description(),
    }


def cpu_description() -> str:
    """The CPU's maker and model, whether it has native bf16, AMX and VNNI: kernels and their speed differ
    by all of them (docs/benchmarks.md, "Machines differ"), and int8's inputs by VNNI
    (core.engine.int8_weights)."""
    fields = cpu_fields()
    if not fields:
        return platform.processor() or "unknown"
    flags = cpu_flags()
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    isa += ", VNNI" if cpu_has_int8_dot_products() else ""
    isa += ", AMX" if "amx_bf16" in flags else ""  # bfloat16 products in tiles: several times AVX-512-BF16's
    family = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
    cap = kernel_cap()
    capped = f", kernels capped at {cap} ({' '.join(_caps_set())})" if cap else ""
    return f"{fields.get('vendor_id', '?')} {fields.get('model name', '?')} ({family}), {isa}, {bf16}{capped}"


def cpu_fields() -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo ("model name", "flags", ...); empty where it cannot be read."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {}
    return fields


def cpu_flags() -> set[str]:
    """The instruction-set flags the CPU lists ("avx2", "avx512_bf16", "amx_tile", ...)."""
    return set(cpu_fields().get("flags", "").split())


def _caps_set() -> list[str]:
    """The caps this run was started with, as NAME=value."""
    return [f"{name}={os.environ[name]}" for name in KERNEL_CAPS if os.environ.get(name)]


def kernel_cap() -> str:
    """The instruction set a run's kernels were held to ("AVX2"), or "" for this CPU's own: a run with
    `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2` computes as a CPU
    without AVX-512 or native bf16 does (its memory and cores stay this machine's)."""
    caps = {os.environ[name].upper() for name in KERNEL_CAPS if os.environ.get(name)}
    return "/".join(sorted(caps))


def machine_kind(r: dict) -> str:
    """The CPU a recorded result ran on, as maker, model and family ("AuthenticAMD AMD EPYC (family 25
    model 17)"): results of one kind are comparable, whatever flags later runs learned to record."""
    kind = re.match(r".*?\(family [^)]*\)", r.get("cpu") or "")  # model names hold brackets too: "Intel(R)"
    return kind.group(0) if kind else "CPU not recorded"
