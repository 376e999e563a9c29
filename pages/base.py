"""Chat with the base mode."""

from ui.chat import render_mode_page

render_mode_page("base")
