"""PII detection: candidates found by pattern, confirmed by maintained validators.

Phone numbers come from `phonenumbers` (Google's libphonenumber); credit cards are checked with the Luhn
checksum, IBANs with their mod-97 check and US social security numbers with the SSA's rules
(`python-stdnum`); IP addresses with the standard library. Validators keep the false-positive rate low:
a 16-digit order number that fails the Luhn check is not a card.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
IPV6 = re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}\b")


@dataclass(frozen=True, order=True)
class Entity:
    start: int
    end: int
    kind: str


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def find_pii(text: str, region: str = "US") -> list[Entity]:
    """Every PII entity in `text`, without overlaps (the earliest, then longest, wins)."""
    found: list[Entity] = []
    for m in EMAIL.finditer(text):
        found.append(Entity(m.start(), m.end(), "EMAIL_ADDRESS"))
    for m in CARD.finditer(text):
        digits = _digits(m.group())
        # Issuer numbers start with 1-9 (Visa 4, Mastercard 2/5, Amex 3, Discover 6); a run of one digit is filler.
        if 13 <= len(digits) <= 19 and digits[0] != "0" and len(set(digits)) > 1 and luhn.is_valid(digits):
            found.append(Entity(m.start(), m.end(), "CREDIT_CARD"))
    for m in IBAN.finditer(text):
        if iban.is_valid(m.group().replace(" ", "")):
            found.append(Entity(m.start(), m.end(), "IBAN_CODE"))
    for m in SSN.finditer(text):
        if ssn.is_valid(_digits(m.group())):
            found.append(Entity(m.start(), m.end(), "US_SSN"))
    for rx in (IPV4, IPV6):
        for m in rx.finditer(text):
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            found.append(Entity(m.start(), m.end(), "IP_ADDRESS"))
    for pm in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        found.append(Entity(pm.start, pm.end, "PHONE_NUMBER"))
    return _without_overlaps(found)


def _without_overlaps(entities: list[Entity]) -> list[Entity]:
    out: list[Entity] = []
    for e in sorted(entities, key=lambda e: (e.start, -(e.end - e.start))):
        if out and e.start < out[-1].end:
            continue
        out.append(e)
    return out


def mask(text: str, entities: list[Entity]) -> str:
    """Each entity replaced by its type, e.g. `[EMAIL_ADDRESS]`."""
    parts: list[str] = []
    last = 0
    for e in entities:
        parts.append(text[last : e.start])
        parts.append(f"[{e.kind}]")
        last = e.end
    parts.append(text[last:])
    return "".join(parts)
