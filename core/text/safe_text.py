"""Makes untrusted text (model output, documents, user input) display literally in Markdown.

Streamlit already escapes HTML when unsafe_allow_html is off; this also stops Markdown images and
links (which would fetch outside URLs), `:color[...]` directives and `$...$` LaTeX. The escaping is
per character, so it can be applied to each streamed piece on its own.
"""

_ESCAPED = str.maketrans({c: "\\" + c for c in "\\$[]<>*_`~#|"})


def escape_markdown(text: str) -> str:
    return text.translate(_ESCAPED)
