"""Turns one file (.md, .txt, .pdf, .html) into LangChain Documents with LangChain's loaders."""

import warnings
from pathlib import Path

from langchain_core.documents import Document

with warnings.catch_warnings():  # langchain-community announces its sunset on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.document_loaders import BSHTMLLoader, PyPDFLoader, TextLoader

SUPPORTED_SUFFIXES = (".md", ".txt", ".pdf", ".html", ".htm")


class UnreadableDocument(ValueError):
    """A file that yields no usable text; the message says why."""


def load_file(path: Path) -> list[Document]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableDocument(f"{path.name}: unsupported type; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    if suffix == ".pdf":
        loader = PyPDFLoader(path, mode="single")
    elif suffix in (".html", ".htm"):
        loader = BSHTMLLoader(path, bs_kwargs={"features": "html.parser"}, get_text_separator="\n")
    else:
        loader = TextLoader(path, autodetect_encoding=True)
    try:
        documents = loader.load()
    except Exception as error:  # each loader raises its own types for broken files
        raise UnreadableDocument(f"{path.name}: could not be read ({type(error).__name__})") from error
    documents = [d for d in documents if d.page_content.strip()]
    if not documents:
        raise UnreadableDocument(f"{path.name}: contains no text")
    return documents
