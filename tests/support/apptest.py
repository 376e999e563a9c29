"""AppTest helpers the page tests share: open a page through the router, and all the text it shows."""

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception
    return at


def page_texts(at: AppTest) -> str:
    return " ".join(
        [m.value for m in at.markdown]
        + [e.value for e in at.error]
        + [s.value for s in at.success]
        + [w.value for w in at.warning]
        + [i.value for i in at.info]
        + [c.value for c in at.caption]
        + [t.value for t in at.text]
    )
