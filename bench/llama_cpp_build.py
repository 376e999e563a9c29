"""Installs llama-cpp-python, the bench's decode reference, built for the instruction sets this CPU lists.

pip's own build is native (`-march=native`), and on an Intel CPU with AMX its tile kernels stopped on an
illegal instruction at the first token: the kernel trapped `tilezero` in a worker thread that had no tile
configuration loaded (dmesg: "trap invalid opcode ... in libggml-cpu.so"; a lone C test of the same
instructions ran). Naming the sets instead, with AMX off, runs there. The wheel is built once per set of
flags, never taken from pip's cache (a wheel built on another CPU would be), and its flags are recorded
beside the environment, so a checkout moved to another kind of CPU builds again.
"""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from bench.run_info import cpu_flags

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements-bench.txt"
# /proc/cpuinfo flag -> ggml's CMake option; those absent stay off (ggml's own defaults assume AVX2)
GGML_OPTIONS = {
    "sse4_2": "GGML_SSE42",
    "avx": "GGML_AVX",
    "avx2": "GGML_AVX2",
    "fma": "GGML_FMA",
    "f16c": "GGML_F16C",
    "bmi2": "GGML_BMI2",
    "avx_vnni": "GGML_AVX_VNNI",
    "avx512f": "GGML_AVX512",
    "avx512vbmi": "GGML_AVX512_VBMI",
    "avx512_vnni": "GGML_AVX512_VNNI",
    "avx512_bf16": "GGML_AVX512_BF16",
}
ALWAYS_OFF = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


def cmake_args(flags: set[str]) -> str:
    """CMAKE_ARGS for a build that uses exactly the listed instruction sets, AMX excepted."""
    args = ["-DGGML_NATIVE=OFF"]
    args += [f"-D{option}={'ON' if flag in flags else 'OFF'}" for flag, option in GGML_OPTIONS.items()]
    args += [f"-D{option}=OFF" for option in ALWAYS_OFF]
    return " ".join(args)


def pinned_requirement() -> str:
    return next(line.strip() for line in REQUIREMENTS.read_text().splitlines() if line.startswith("llama-cpp-python"))


def main() -> None:
    args = cmake_args(cpu_flags())
    stamp = Path(sys.prefix) / "llama-cpp-build.txt"
    built_for = f"{pinned_requirement()} {args}"
    if stamp.exists() and stamp.read_text() == built_for:
        return
    print(f"Building llama-cpp-python for this CPU (~6.5 min on 2 cores): {args}", flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir"]
    environment = {**os.environ, "CMAKE_ARGS": args}
    try:  # a build made for other flags is replaced; its dependencies stay
        importlib.metadata.version("llama-cpp-python")
        subprocess.run([*pip, "--force-reinstall", "--no-deps", pinned_requirement()], env=environment, check=True)
    except importlib.metadata.PackageNotFoundError:
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], env=environment, check=True)
    stamp.write_text(built_for)


if __name__ == "__main__":
    main()
