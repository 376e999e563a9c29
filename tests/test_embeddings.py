"""The bundled embeddings load on the first text to embed."""

import pytest

from core.lab import Lab

pytestmark = pytest.mark.model


def test_embeddings_load_on_the_first_text_to_embed(lab, sample):
    """Listing documents and a base-mode answer never load sentence-transformers; a search does."""
    fresh = Lab(lab.settings)
    assert [d.name for d in fresh.knowledge_base(sample).documents()]
    assert fresh.ask(sample, "base", "Hello!").collect().text
    assert not fresh.embeddings.is_loaded
    found = fresh.ask(sample, "rag", "How many days do I have to return a bike?").collect().sources
    assert found and fresh.embeddings.is_loaded
