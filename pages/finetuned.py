"""Chat with the finetuned mode."""

from ui.chat import render_mode_page

render_mode_page("finetuned")
