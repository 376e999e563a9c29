"""Knowledge bases: loading and parsing documents, the Chroma store and its commit manifest, lexical search, freshness."""
