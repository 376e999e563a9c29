"""'What changed': facts found in answers, spelling variants folded, differences first."""

from core.text.facts import compare_facts, extract_facts


def keys(text: str) -> list[str]:
    return [fact.key for fact in extract_facts(text)]


def test_extracts_every_kind_of_fact_in_order():
    text = (
        "Return within 30 days for a $25.00 fee, 15% off, 2 business days. Call +1 (555) 123-4567 "
        "or write to help@lumen.example, see www.lumen.example/returns. Open 9am."
    )
    assert keys(text) == [
        "quantity:30 day",
        "money:25",
        "quantity:15 %",
        "quantity:2 business-day",
        "phone:15551234567",
        "email:help@lumen.example",
        "web:lumen.example/returns",
        "time:9am",
    ]


def test_spelling_variants_are_the_same_fact():
    assert keys("a 30-day window") == keys("30 days") == keys("30 Days")
    assert keys("$25") == keys("$25.00") and keys("15 percent") == keys("15%")


def test_plain_prose_has_no_facts():
    assert extract_facts("Hello from Lumen Care! Ride on!") == []


def test_differences_come_first_with_presence_per_answer():
    rows = compare_facts(["Within 30 days, $25.", "A 30-day window and 45 days for batteries.", "No idea."])
    assert [row.fact.key for row in rows] == ["money:25", "quantity:45 day", "quantity:30 day"]
    assert rows[0].present == [True, False, False] and not rows[0].shared_by_all
    assert rows[2].present == [True, True, False]
    assert all(row.shared_by_all for row in compare_facts(["$5", "costs $5.00"]))
