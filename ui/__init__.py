"""Streamlit helpers shared by the pages: the cached Lab, the sidebar, the chat view. No engine logic here."""
