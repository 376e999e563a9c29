"""Untrusted text shows literally: no HTML, images, links, LaTeX or directives."""

import re

from core.safe_text import escape_markdown


def test_markup_is_escaped():
    hostile = 'Pay $5 or $10 ![x](http://evil.example/a.png) <img src=x onerror=alert(1)> :red[hi] \\$'
    escaped = escape_markdown(hostile)
    assert "![x](" not in escaped and "<img" not in escaped and ":red[" not in escaped
    assert not re.search(r"(?<!\\)\$", escaped)  # every dollar is escaped
    # Unescaping gives back the original text exactly.
    assert re.sub(r"\\(.)", r"\1", escaped) == hostile


def test_piecewise_escaping_equals_whole_escaping():
    text = "a ![b](c) $d$ <e>"
    assert "".join(escape_markdown(ch) for ch in text) == escape_markdown(text)
