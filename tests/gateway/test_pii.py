"""PII detection precision and recall on a labelled sample (no server needed)."""

from __future__ import annotations

from modelgate.gateway.pii import find_pii, mask

# (text, the entity kinds a careful human would mark in it)
LABELLED: list[tuple[str, list[str]]] = [
    ("Reach me at jane.doe@example.org tomorrow.", ["EMAIL_ADDRESS"]),
    ("My number is +1 415-555-0132.", ["PHONE_NUMBER"]),
    ("Call (650) 253-0000 after 5pm.", ["PHONE_NUMBER"]),
    ("Card 4111 1111 1111 1111 exp 12/29", ["CREDIT_CARD"]),
    ("Pay with 5500-0000-0000-0004 please", ["CREDIT_CARD"]),
    ("IBAN DE89 3704 0044 0532 0130 00 for the transfer", ["IBAN_CODE"]),
    ("GB82WEST12345698765432 is the account", ["IBAN_CODE"]),
    ("SSN 123-45-6789 on file", ["US_SSN"]),
    ("Server at 192.168.10.20 is down", ["IP_ADDRESS"]),
    ("IPv6 2001:db8:85a3:0:0:8a2e:370:7334 too", ["IP_ADDRESS"]),
    ("Email a@b.co and call +44 20 7946 0958", ["EMAIL_ADDRESS", "PHONE_NUMBER"]),
    # Negatives: numbers that look like PII but fail the validators.
    ("Order 1234 5678 9012 3456 shipped", []),
    ("SSN-like 000-12-3456 is never issued", []),
    ("The year 2024 had 365 days and 12 months.", []),
    ("Version 3.11 of python, build 20231002", []),
    ("IBAN DE00 0000 0000 0000 0000 00 is invalid", []),
    ("No PII here, just words about servers.", []),
    ("Reference 999-99-9999 is a test value", []),
]


def test_precision_and_recall_on_the_labelled_sample() -> None:
    true_pos = false_pos = false_neg = 0
    for text, expected in LABELLED:
        found = sorted(e.kind for e in find_pii(text))
        want = sorted(expected)
        for kind in set(found) | set(want):
            tp = min(found.count(kind), want.count(kind))
            true_pos += tp
            false_pos += found.count(kind) - tp
            false_neg += want.count(kind) - tp
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / (true_pos + false_neg)
    print(f"PII precision {precision:.2f}, recall {recall:.2f} on {len(LABELLED)} labelled texts")
    assert precision >= 0.95
    assert recall >= 0.9


def test_mask_replaces_each_entity_with_its_type() -> None:
    text = "mail bob@example.com or call +1 415-555-0132"
    assert mask(text, find_pii(text)) == "mail [EMAIL_ADDRESS] or call [PHONE_NUMBER]"
