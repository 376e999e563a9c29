#!/usr/bin/env bash
# Serves the base model and every LoRA adapter the Lab trained from ONE vLLM server (OpenAI-compatible API).
#
# Usage: deploy/vllm/serve.sh [--dry-run] [more `vllm serve` flags...]
#   --dry-run   print the vllm command instead of running it (vLLM need not be installed)
#
# Environment (all optional):
#   LAB_DATA_DIR        the Lab's data dir (default: .lab in the repository); adapters are read from
#                       $LAB_DATA_DIR/adapters/<scenario>/<name>/
#   LAB_VLLM_MODEL      base model: a Hugging Face id or a folder (default: the Lab's converted copy of
#                       SmolLM2-135M-Instruct, $LAB_DATA_DIR/models/SmolLM2-135M-Instruct, written by `make prepare`)
#   LAB_VLLM_SERVED_NAME  name clients ask for to get the base model (default: the folder's name, or the id)
#   LAB_VLLM_SCENARIO   serve only this scenario's adapters (default: every scenario's)
#   LAB_VLLM_MAX_LORAS  adapters that can run in one batch (default: the number of adapters, at most 8)
#   LAB_VLLM_MAX_LORA_RANK  (default: the largest adapter rank, rounded up to a value vLLM accepts)
#   LAB_VLLM_HOST, LAB_VLLM_PORT, LAB_VLLM_DTYPE  (default: 0.0.0.0, 8000, bfloat16)
#
# Each adapter is served under the name <scenario>--<adapter>: set that as LAB_OPENAI_FINETUNED_MODEL.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=1
  shift
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_dir="${LAB_DATA_DIR:-$repo/.lab}"
[[ "$data_dir" == /* ]] || data_dir="$PWD/$data_dir" # vLLM gets absolute paths, whatever its working dir
python="${PYTHON:-python3}"

model="${LAB_VLLM_MODEL:-$data_dir/models/SmolLM2-135M-Instruct}"
if [[ -z "${LAB_VLLM_MODEL:-}" && ! -f "$model/config.json" ]]; then
  echo "No converted model at $model: run \`make prepare\` (or set LAB_VLLM_MODEL to a Hugging Face id)." >&2
  ((dry_run)) || exit 1
fi
# A local folder would otherwise be served under its full path.
if [[ -d "$model" || -z "${LAB_VLLM_MODEL:-}" ]]; then
  served_name="${LAB_VLLM_SERVED_NAME:-$(basename "$model")}"
else
  served_name="${LAB_VLLM_SERVED_NAME:-$model}"
fi

# The largest rank in an adapter_config.json (peft's rank_pattern can raise it for some modules).
rank_of() {
  "$python" -c 'import json, sys; c = json.load(open(sys.argv[1])); print(max([c["r"], *(c.get("rank_pattern") or {}).values()]))' "$1"
}

# The same adapters the Lab lists (core/training/adapters.py): complete folders only, never .staging-* ones.
modules=()
names=()
max_rank=0
# shellcheck disable=SC2231  # the scenario part is left unquoted on purpose: its default '*' is a glob
for folder in "$data_dir"/adapters/${LAB_VLLM_SCENARIO:-*}/*/; do
  folder="${folder%/}"
  name="$(basename "$folder")"
  scenario="$(basename "$(dirname "$folder")")"
  [[ "$name" == .* || "$scenario" == .* ]] && continue
  [[ -f "$folder/adapter_config.json" && -f "$folder/adapter_model.safetensors" && -f "$folder/lab_adapter.json" ]] || continue
  rank="$(rank_of "$folder/adapter_config.json")"
  if ((rank > max_rank)); then max_rank="$rank"; fi
  note="rank $rank"
  [[ "$(cat "$data_dir/adapters/$scenario/ACTIVE" 2>/dev/null)" == "$name" ]] && note+=", active in the Lab"
  names+=("$scenario--$name ($note)")
  modules+=("$scenario--$name=$folder")
done

# vLLM accepts only these values for --max-lora-rank; an adapter's rank must not exceed it.
if [[ -n "${LAB_VLLM_MAX_LORA_RANK:-}" ]]; then
  lora_rank="$LAB_VLLM_MAX_LORA_RANK"
elif ((max_rank == 0)); then
  lora_rank=16 # no adapters yet: vLLM's default
else
  lora_rank=""
  for allowed in 8 16 32 64 128 256 320 512; do
    if ((allowed >= max_rank)); then
      lora_rank="$allowed"
      break
    fi
  done
  [[ -n "$lora_rank" ]] || { echo "An adapter has rank $max_rank; vLLM serves at most 512." >&2; exit 1; }
fi
count="${#modules[@]}"
max_loras="${LAB_VLLM_MAX_LORAS:-$((count < 1 ? 1 : (count > 8 ? 8 : count)))}"

command=(vllm serve "$model"
  --served-model-name "$served_name"
  --host "${LAB_VLLM_HOST:-0.0.0.0}" --port "${LAB_VLLM_PORT:-8000}"
  --dtype "${LAB_VLLM_DTYPE:-bfloat16}"
  --enable-lora --max-lora-rank "$lora_rank" --max-loras "$max_loras")
if ((count)); then command+=(--lora-modules "${modules[@]}"); fi
command+=("$@")

{
  echo "Base model, for LAB_OPENAI_MODEL: $served_name"
  if ((count)); then
    echo "Adapters, each a model name for LAB_OPENAI_FINETUNED_MODEL:"
    printf '  %s\n' "${names[@]}"
  else
    echo "No adapters under $data_dir/adapters yet: train one in the Lab, then restart this server."
  fi
} >&2

if ((dry_run)); then
  printf '%q' "${command[0]}"
  printf ' %q' "${command[@]:1}"
  echo
else
  exec "${command[@]}"
fi
