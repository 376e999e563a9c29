"""Turns one file (.md, .txt, .pdf, .html, .docx) into clean text, with LangChain's loaders.

Text files are decoded here rather than by TextLoader so that non-UTF-8 files are read as far as
they can be and the user is told what was guessed or replaced. Every result is cleaned of
invisible characters (zero-width, bidi controls, Unicode tags, other control codes) that could hide
text from a reader but not from the model, and an HTML page of the elements a browser would not
show (judged from inline styles only: a stylesheet class that hides text is not resolved). Raises
UnreadableDocument with a message fit to show a user.
"""

import codecs
import re
import tempfile
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

with warnings.catch_warnings():  # langchain-community announces its sunset on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.document_loaders import BSHTMLLoader, Docx2txtLoader, PyPDFLoader

SUPPORTED_SUFFIXES = (".md", ".txt", ".pdf", ".html", ".htm", ".docx")

# Zero-width and bidi formatting characters, C0/C1 controls other than tab and newline, and the Unicode
# tag characters and supplementary variation selectors, which render as nothing yet can spell out a
# whole instruction that a model reads ("ASCII smuggling").
_INVISIBLE = re.compile(
    r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\x00-\x08\x0b-\x1f\x7f-\x9f"
    r"\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
# Inline styles that hide an element; white text only counts where no background is set inline.
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|(?:font-size|opacity)\s*:\s*0+(?:\.0*)?[a-z%]*\s*(?:;|!|$)",
    re.IGNORECASE,
)
_WHITE_TEXT = re.compile(
    r"(?<![-\w])color\s*:\s*(?:white\b|#fff(?:fff)?\b|rgba?\(\s*255\s*,\s*255\s*,\s*255\b)", re.IGNORECASE
)
_BACKGROUND = re.compile(r"background", re.IGNORECASE)
_BLANK_RUNS = re.compile(r"\n{3,}")


class UnreadableDocument(ValueError):
    """A file that yields no usable text; the message says why."""


@dataclass
class ParsedText:
    text: str
    notes: list[str] = field(default_factory=list)  # what was guessed, replaced or removed


def parse_file(path: Path, display_name: str | None = None) -> ParsedText:
    """The file's text; `display_name` is what messages call it (never a path)."""
    name = display_name or path.name
    suffix = Path(name).suffix.lower() if display_name else path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableDocument(f"{name}: unsupported type; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    data = path.read_bytes()
    if not data.strip():
        raise UnreadableDocument(f"{name}: the file is empty")
    if suffix in (".md", ".txt"):
        parsed = decode_text(data)
    elif suffix == ".pdf":
        parsed = ParsedText(_load_pdf(path, name))
    elif suffix == ".docx":
        parsed = ParsedText(_load_with(Docx2txtLoader(str(path)), name, "Word document"))
    else:
        html = decode_text(data)
        page, hidden = _drop_hidden(html.text)
        notes = html.notes + (
            [f"removed {hidden} hidden HTML element(s) (text a browser would not show)"] if hidden else []
        )
        with tempfile.TemporaryDirectory() as folder:  # the loader reads a file: give it the decoded text
            utf8 = Path(folder) / "page.html"
            utf8.write_text(page, encoding="utf-8")
            loader = BSHTMLLoader(
                utf8, open_encoding="utf-8", bs_kwargs={"features": "html.parser"}, get_text_separator="\n"
            )
            parsed = ParsedText(_load_with(loader, name, "HTML page"), notes)
    return clean(parsed, name)


def _drop_hidden(html: str) -> tuple[str, int]:
    """The page without the elements a browser would not show (the hidden attribute; inline display:none,
    visibility:hidden, zero font size or opacity; white text on no inline background), and how many went."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    removed = 0
    stack = [(soup, False)]  # (element, whether it or an ancestor sets a background); no recursion: pages nest deep
    while stack:
        element, shaded = stack.pop()
        for child in element.find_all(True, recursive=False):
            style = child.get("style") or ""
            child_shaded = shaded or bool(_BACKGROUND.search(style))
            white = _WHITE_TEXT.search(style) and not child_shaded
            if child.has_attr("hidden") or _HIDDEN_STYLE.search(style) or white:
                child.decompose()
                removed += 1
            else:
                stack.append((child, child_shaded))
    return (str(soup) if removed else html), removed


def decode_text(data: bytes) -> ParsedText:
    """UTF-8 if it is; else the encoding charset-normalizer finds (Windows-1252 for short Western text,
    where guessing is unreliable); else UTF-8 with replacements. Says which."""
    try:
        return ParsedText(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return ParsedText(data.decode(encoding), [f"not UTF-8: decoded as {encoding.upper()}"])
            except UnicodeDecodeError:
                break
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if len(data) < 2000 or best is None or best.chaos >= 0.2:
        try:
            return ParsedText(data.decode("cp1252"), ["not UTF-8: decoded as Windows-1252 (Western European)"])
        except UnicodeDecodeError:
            best = best if best is not None and best.chaos < 0.2 else None
    if best is not None:
        return ParsedText(str(best), [f"not UTF-8: decoded as {best.encoding}"])
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return ParsedText(text.replace("\ufffd", "?"), [f"not valid UTF-8: {bad} undecodable byte(s) replaced with '?'"])


def clean(parsed: ParsedText, name: str) -> ParsedText:
    text = unicodedata.normalize("NFC", parsed.text).replace("\r\n", "\n").replace("\r", "\n")
    text, hidden = _INVISIBLE.subn("", text)
    text = _BLANK_RUNS.sub("\n\n", text).strip()
    notes = list(parsed.notes)
    if hidden:
        notes.append(f"removed {hidden} invisible character(s)")
    if not text:
        raise UnreadableDocument(f"{name}: contains no text")
    return ParsedText(text, notes)


def _load_pdf(path: Path, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        encrypted = reader.is_encrypted
    except (PyPdfError, ValueError, OSError) as error:
        raise UnreadableDocument(f"{name}: not a readable PDF ({type(error).__name__})") from error
    # pypdf opens a PDF whose user password is empty; any other password we cannot know.
    if encrypted and reader.decrypt("") == 0:
        raise UnreadableDocument(f"{name}: the PDF is password-protected; upload an unlocked copy")
    text = _load_with(PyPDFLoader(path, mode="single"), name, "PDF")
    if not text.strip():
        raise UnreadableDocument(f"{name}: the PDF has no extractable text (a scanned PDF needs OCR first)")
    return text


def _load_with(loader, name: str, kind: str) -> str:
    try:
        documents = loader.load()
    except MemoryError:
        raise  # the parse worker reports it as the memory bound
    except Exception as error:  # each loader raises its own types for broken files
        raise UnreadableDocument(f"{name}: not a readable {kind} ({type(error).__name__})") from error
    return "\n\n".join(d.page_content for d in documents)
