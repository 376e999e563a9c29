"""Chat with the rag mode."""

from ui.chat import render_mode_page

render_mode_page("rag")
