"""The local model: loading and converting weights, the batched decoding worker with per-row LoRA, the embeddings, and the CPU budget shared between the Lab's processes."""
