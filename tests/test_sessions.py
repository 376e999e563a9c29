"""Eight user sessions at once through one Lab, as the app's pages call it: the model is loaded once,
and every session's answer equals what it gets asking alone (no adapter, history or sources leaking)."""

import threading

import pytest

import core.lab
from core.common.vocabulary import MODES
from core.lab import Lab

pytestmark = pytest.mark.model

NAMES = ["Ada", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana"]
QUESTIONS = ["How many days do I have to return a bike?", "Do you ship to Canada?"]


def session_requests() -> list[tuple[str, str, list[dict]]]:
    """(mode, question, history) per session: every mode twice, each session with its own earlier turn."""
    return [
        (
            MODES[i % len(MODES)],
            QUESTIONS[i // len(MODES)],
            [
                {"role": "user", "content": f"Hi, I'm {name}, I ride a Lumen Volt."},
                {"role": "assistant", "content": f"Hello {name}! How can I help with your Volt?"},
            ],
        )
        for i, name in enumerate(NAMES)
    ]


def answer_text(lab: Lab, scenario, mode: str, question: str, history: list[dict]) -> str:
    stream = lab.ask(scenario, mode, question, history)
    for _ in stream:
        pass
    return stream.answer.text


def test_eight_sessions_at_once_get_their_serial_answers_from_one_model_load(settings, sample, monkeypatch):
    loads = []
    real_load_model = core.lab.load_model

    def counted_load_model(*args, **kwargs):
        loads.append(threading.get_ident())
        return real_load_model(*args, **kwargs)

    monkeypatch.setattr(core.lab, "load_model", counted_load_model)
    lab = Lab(settings)  # cold: the sessions race to load the model
    requests = session_requests()
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(requests))

    def session(index: int) -> None:
        try:
            start.wait()
            results[index] = answer_text(lab, sample, *requests[index])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert len(loads) == 1
    serial = [answer_text(lab, sample, *request) for request in requests]
    assert all(serial)
    assert [results[i] for i in range(len(requests))] == serial
