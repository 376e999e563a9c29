"""Chat with the hybrid mode."""

from ui.chat import render_mode_page

render_mode_page("hybrid")
