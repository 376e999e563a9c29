"""Fine-tuning: training configuration, datasets, context-aware grounding, the LoRA trainer, the adapter registry, the forgetting check."""
