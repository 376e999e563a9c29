"""Untrusted text shows literally: no HTML, images, links, LaTeX or directives."""

import re

from core.text.safe_text import escape_markdown

SPECIAL = set("\\$[]<>*_`~#|")


def _unescaped_specials(escaped: str) -> list[str]:
    found, index = [], 0
    while index < len(escaped):
        if escaped[index] == "\\":
            index += 2  # an escape pair
            continue
        if escaped[index] in SPECIAL:
            found.append(escaped[index])
        index += 1
    return found


def test_markup_is_escaped():
    hostile = "Pay $5 or $10 ![x](http://evil.example/a.png) <img src=x onerror=alert(1)> :red[hi] \\$"
    escaped = escape_markdown(hostile)
    assert _unescaped_specials(escaped) == []
    assert "\\<img" in escaped and "!\\[x\\](" in escaped and "\\$5" in escaped
    assert re.sub(r"\\(.)", r"\1", escaped) == hostile  # unescaping gives back the original exactly


def test_piecewise_escaping_equals_whole_escaping():
    text = "a ![b](c) $d$ <e>"
    assert "".join(escape_markdown(ch) for ch in text) == escape_markdown(text)
