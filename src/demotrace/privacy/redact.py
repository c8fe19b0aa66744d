"""Secrets and personal data in text: find them, replace them with ``<KIND>``. Pure, no I/O.

The recorder runs :func:`redact` on whole typed sequences (after BackSpace edits are applied), on
window titles, and :func:`redact_url` on URLs, before anything is stored. Every detector is a
precompiled regular expression followed, where the shape alone is too weak, by a check in Python
(checksum, digit count, context). About 0.1 ms for a 200-character string (BENCHMARKS.md).

What is detected (``Finding.kind``):

``CARD``
    13-19 digits, optionally grouped by single spaces or dashes, Luhn-valid, with a length that
    fits the first digit (2, 5, 6, 8: 16-19; 3: 14-19; 4: 13, 16 or 19; 7: 16). Numbers starting
    with 0, 1 or 9 are not cards here (1 would catch epoch timestamps in ms and ns). The digit
    run must not continue on either side (a 20-digit run holds no card) nor follow ``+``.
``IBAN``
    Country code + 2 check digits + BBAN, with the exact length registered for that country
    (:data:`IBAN_LENGTHS`), ISO 7064 mod-97 valid, compact or in groups of 4 separated by single
    spaces (or dashes), any case.
``EMAIL``
    ``local@domain.tld``. ``git@host:path`` (an SSH remote) is not an address.
``PHONE``
    International numbers (``+CC``, ``(+CC)`` or ``00CC`` with a separator) with 8-15 digits;
    national numbers with separators or parentheses and 9-13 digits in these shapes: North American
    ``(415) 555-0132``, ``415-555-0132``, ``415.555.0132``, ``415 555 0132``, ``1-800-...``;
    trunk-0 ``020 7946 0958``, ``06 12 34 56 78``, ``0151-23456789``, ``(030) 1234567``; and
    Spanish-style ``612 345 678``, ``612 34 56 78``. Not phones: separators that change after
    the area code, anything holding a date (``01.05.2024``), amounts next to a currency, and
    space-separated groups inside a longer list of numbers. Plain digit runs without
    separators (order numbers) are never national phone numbers.
``NATIONAL_ID``
    US SSN ``ddd-dd-dddd`` (area not 000, 666 or 9xx; group not 00; serial not 0000); UK
    National Insurance number (prefix letters per HMRC's exclusions: first not D F I Q U V,
    second not D F I O Q U V, not BG GB KN NK NT TN ZZ; 6 digits; suffix A-D; ``AB123456C`` or
    ``AB 12 34 56 C``); Spanish DNI (8 digits + mod-23 check letter) and NIE (X/Y/Z + 7 digits
    + check letter); Italian codice fiscale (16 characters ending in its check character,
    including the letter-for-digit substitutions of duplicate codes).
``KEY``
    Tokens with a known prefix and a minimum body length: ``sk-`` (20+), ``sk_live_``,
    ``sk_test_``, ``pk_live_``, ``pk_test_``, ``rk_live_``, ``rk_test_`` (16+), ``ghp_ gho_ ghu_
    ghs_ ghr_`` (30+), ``github_pat_`` (22+), ``glpat-`` (20+), ``xoxb- xoxp- xoxa- xoxr- xoxs-
    xapp-`` (10+), AWS ``AKIA``/``ASIA`` + 16 uppercase alphanumerics, Google ``AIza`` + 35,
    ``ya29.`` (20+), ``npm_`` (30+), ``pypi-`` (16+), ``hf_`` (30+), SendGrid ``SG.x.y``, and PEM
    ``-----BEGIN ... PRIVATE KEY-----`` blocks (to the END line, or to the end of the base64
    that follows when the block is cut short). After the prefixes that ordinary words can
    follow (``sk-``, ``glpat-``, ``xox?-``, ``xapp-``, ``pypi-``, ``ya29.``, ``hf_``,
    ``github_pat_``) the body must hold a digit or both cases: ``sk-learn-compatible-pipeline``
    is not a key.
``JWT``
    ``eyJ...`` header, a payload and a (possibly empty) signature, base64url, dot-separated
    (JWE's five segments too).
``SECRET``
    * High-entropy runs: 20+ characters of the base64/base64url alphabet holding letters and
      digits, with Shannon entropy of at least :data:`ENTROPY_MIN` bits per character and at
      least :data:`SWITCH_MIN` of adjacent alphanumeric pairs changing class (lower, upper,
      digit), which separates random strings from paths and identifiers such as
      ``Invoice_INV-2024-00318``. Lowercase words at either end are left out of the judgement
      (``billing-worker-7d9f8b6c5d-x2k4p`` is a pod name). Pure hexadecimal counts from 32
      characters: full 40-hex git commit hashes, MD5 ETags and bare sha256 digests **are**
      redacted, because they cannot be told apart from hex API keys and session tokens; short
      hashes (7-12) are kept, and so are digests written with their algorithm
      (``sha256:...``, ``sha512-...``), W3C ``traceparent`` values and UUIDs (record
      identifiers far more often than secrets).
    * Password-like tokens: a whitespace-delimited token (wrapping quotes and brackets aside,
      trailing ``.,;:?`` aside for the judgement) of 8+ characters mixing at least three of
      lowercase, uppercase, digit and symbol, with a letter and a digit, that is not an ordinary
      shape (URL, e-mail, absolute path, date or time, version, money, size, hex literal,
      digest, MAC or IPv6 address, UUID, Kubernetes pod, shortcut, spreadsheet formula, code
      call with a string literal) and that shows a sign of being made up:

      - a password symbol (``! @ # $ % ^ & * ? ~ | \\``) where ordinary text does not put one
        (``#tag``, ``@name``, ``$HOME``, ``AT&T``, ``a!=b``, ``user@host``, ``pkg@^1.2`` are
        ordinary), ``+`` or ``=`` between characters outside operators and ``name=value``, or
        two different separators side by side (``+-``, ``_.``...);
      - a part that is not a word, number, code or camelCase identifier: mixed case such as
        ``GfVhtbx``, or letters and digits alternating like ``s3cr3t`` / ``Tr0ub4dor``;
      - both cases and digits switching class at :data:`RANDOM_SWITCH_MIN` of the steps or more.

      Hyphenated words and codes (``COVID-19``, ``Q3-2024``, ``ISO-8601``, ``ABC-1234``),
      product codes (``WH-1000XM5``) and identifiers (``iPhone15Pro``, ``utf8mb4``) are
      ordinary. In ``name=value`` tokens and query strings the values are judged first.
      The redacted span keeps wrapping quotes and brackets but includes trailing ``.`` and
      ``?`` (they may belong to the password).
    * A short list of the most used passwords with digits or symbols added or letters swapped
      for digits (``hunter2``, ``Passw0rd``, ``letmein123``, ``qwerty123!``), which the rule
      above lets through as ordinary words with a number.
    * Values in credential assignments and headers: ``password=...``, ``DB_PASSWORD=...``,
      ``"api_key": "..."``, ``token: ...`` (when the value holds a digit or symbol), ``Bearer
      <token>``, and the ``user:password`` part of ``scheme://user:password@host``.

Where findings overlap they are merged into one span (every character any detector flagged is
redacted) labelled with the most specific kind, in the order of :data:`SPECIFICITY`, the longer
finding on a tie.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

__all__ = [
    "ENTROPY_MIN",
    "HEX_ENTROPY_MIN",
    "IBAN_LENGTHS",
    "KINDS",
    "RANDOM_SWITCH_MIN",
    "SENSITIVE_PARAMS",
    "SPECIFICITY",
    "SWITCH_MIN",
    "Finding",
    "class_switch_rate",
    "codice_fiscale_valid",
    "dni_valid",
    "find_secrets",
    "iban_valid",
    "is_high_entropy",
    "is_password_like",
    "luhn_valid",
    "mask_text",
    "redact",
    "redact_url",
    "shannon_entropy",
]

KINDS = ("CARD", "IBAN", "EMAIL", "PHONE", "NATIONAL_ID", "KEY", "JWT", "SECRET")

#: Most specific first: the label a merged span gets when findings of several kinds overlap.
SPECIFICITY = ("KEY", "JWT", "IBAN", "CARD", "NATIONAL_ID", "EMAIL", "PHONE", "SECRET")
_RANK = {kind: i for i, kind in enumerate(SPECIFICITY)}

# Thresholds, calibrated on bench/corpus/work_text.txt against generated secrets
# (bench/redact_fp.py; figures in BENCHMARKS.md).

#: Minimum Shannon entropy (bits per character) of a high-entropy run that is not pure hex.
#: Random base62 strings of 20 characters score 3.3-4.3; runs of the corpus that pass the
#: class-switch test are all hex.
ENTROPY_MIN = 3.3
#: Minimum share of adjacent alphanumeric pairs changing class (lower/upper/digit) in a
#: high-entropy run. Paths and identifiers of the corpus stay at or below 0.13, except
#: ``GigabitEthernet1/0/24`` (0.25, kept by the path rule); random base62 averages 0.6.
SWITCH_MIN = 0.2
#: The same share, over the non-hex parts of a mixed-case token with digits, from which the
#: token reads as random characters (``iPhone15Pro`` 0.5 is below; ``D0UamTw_L3Fda`` 0.8).
RANDOM_SWITCH_MIN = 0.55
#: Minimum Shannon entropy of a pure-hex run of 32+ characters (random hex: 3.2 and up).
HEX_ENTROPY_MIN = 3.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One span of ``text[start:end]`` that holds a secret of ``kind`` (one of :data:`KINDS`)."""

    kind: str
    start: int
    end: int


_Spans = list[tuple[int, int, str]]

# --------------------------------------------------------------------------------------------
# KEY: known prefixes
# --------------------------------------------------------------------------------------------

_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"(?P<weak>"
    r"sk-[A-Za-z0-9_-]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|xapp-[A-Za-z0-9-]{10,}"
    r"|pypi-[A-Za-z0-9_-]{16,}"
    r"|ya29\.[A-Za-z0-9_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r")"
    r"|[spr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|AIza[A-Za-z0-9_-]{35,}"
    r"|npm_[A-Za-z0-9]{30,}"
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
    r")"
)
_KEY_BODY_RE = re.compile(r"^(?:sk-|glpat-|xox.-|xapp-|pypi-|ya29\.|hf_|github_pat_)")
_PEM_RE = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[A-Za-z0-9+/=:,\s-]*)"
)


def _find_keys(text: str, out: _Spans) -> None:
    for m in _KEY_RE.finditer(text):
        if m.group("weak") is not None:
            body = _KEY_BODY_RE.sub("", m.group())
            has_digit = any(c.isdigit() for c in body)
            if not has_digit and (body.lower() == body or body.upper() == body):
                continue
        out.append((m.start(), m.end(), "KEY"))
    if "-----BEGIN" in text:
        for m in _PEM_RE.finditer(text):
            end = m.end()
            while end > m.start() and text[end - 1].isspace():
                end -= 1
            out.append((m.start(), end, "KEY"))


# --------------------------------------------------------------------------------------------
# JWT
# --------------------------------------------------------------------------------------------

_JWT_RE = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
    r"(?:\.[A-Za-z0-9_-]+){0,2}"
)


def _find_jwt(text: str, out: _Spans) -> None:
    if "eyJ" in text:
        out.extend((m.start(), m.end(), "JWT") for m in _JWT_RE.finditer(text))


# --------------------------------------------------------------------------------------------
# EMAIL
# --------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9-]|:[^\s])"
)


def _find_email(text: str, out: _Spans) -> None:
    if "@" not in text:
        return
    for m in _EMAIL_RE.finditer(text):
        # scheme://user:password@host: the userinfo rule (SECRET) covers it, the host is no address
        head = text[max(0, m.start() - 300) : m.start()].rsplit(None, 1)[-1] if m.start() else ""
        at = head.find("://")
        if at >= 0 and not any(c in head[at + 3 :] for c in "/?#"):
            continue
        out.append((m.start(), m.end(), "EMAIL"))


# --------------------------------------------------------------------------------------------
# CARD
# --------------------------------------------------------------------------------------------

_CARD_RE = re.compile(r"(?<![\d+])(?<!\d[ -])[2-8](?:[ -]?\d){12,18}(?![ -]?\d)")
#: Card number lengths by first digit: Visa 13/16/19; Amex 15, Diners 14-16, JCB 16-19;
#: Mastercard, Mir, Discover, UnionPay, Maestro, RuPay 16-19; fleet cards 16.
_CARD_LENGTHS = {
    "2": (16, 17, 18, 19), "3": (14, 15, 16, 17, 18, 19), "4": (13, 16, 19),
    "5": (16, 17, 18, 19), "6": (16, 17, 18, 19), "7": (16,), "8": (16, 17, 18, 19),
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _find_card(text: str, out: _Spans, pos: int = 0, endpos: int | None = None) -> None:
    for m in _CARD_RE.finditer(text, pos, len(text) if endpos is None else endpos):
        raw = m.group()
        if "  " in raw or "--" in raw:
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if len(digits) in _CARD_LENGTHS[digits[0]] and luhn_valid(digits):
            out.append((m.start(), m.end(), "CARD"))


# --------------------------------------------------------------------------------------------
# IBAN
# --------------------------------------------------------------------------------------------

#: IBAN length by country (ISO 13616 registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}")


def iban_valid(compact: str) -> bool:
    """True when ``compact`` (no spaces) has its country's IBAN length and passes mod-97."""
    compact = compact.upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _find_iban(text: str, out: _Spans) -> None:
    pos = 0
    while True:
        m = _IBAN_RE.search(text, pos)
        if m is None:
            return
        start = m.start()
        length = IBAN_LENGTHS.get(text[start : start + 2].upper())
        span = _iban_span(text, start, length) if length else None
        if span is not None:
            out.append((start, span, "IBAN"))
            pos = span
        else:
            pos = start + 1


def _iban_span(text: str, start: int, length: int) -> int | None:
    """End of an IBAN of ``length`` characters at ``start``, compact or grouped by 4 (with
    spaces, or with dashes as some forms print it)."""
    compact_end = start + length
    compact = text[start:compact_end]
    if (
        len(compact) == length
        and compact.isascii()
        and compact.isalnum()
        and not _alnum_at(text, compact_end)
        and iban_valid(compact)
    ):
        return compact_end
    grouped_end = start + length + (length - 1) // 4
    grouped = text[start:grouped_end]
    if len(grouped) != grouped_end - start or _alnum_at(text, grouped_end):
        return None
    sep = grouped[4]
    if sep not in " -":
        return None
    chunks = grouped.split(sep)
    if len(chunks) < 2 or any(len(c) != 4 for c in chunks[:-1]) or not 1 <= len(chunks[-1]) <= 4:
        return None
    joined = "".join(chunks)
    if joined.isascii() and joined.isalnum() and iban_valid(joined):
        return grouped_end
    return None


def _alnum_at(text: str, i: int) -> bool:
    return i < len(text) and text[i].isalnum()


# --------------------------------------------------------------------------------------------
# PHONE
# --------------------------------------------------------------------------------------------

_PHONE_INTL_RE = re.compile(
    r"(?<![\w+(])(?:\(\+[1-9]\d{0,2}\)|(?:\+|00(?=[1-9]))[1-9]\d{0,2})"
    r"(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,8}){1,6}"
    r"(?![\w-]|[.,/:]\d)"
)
_PHONE_NANP_RE = re.compile(
    r"(?<![\w+.,/-])(?:1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}(?P<s>[ .-]))[2-9]\d{2}"
    r"(?(s)(?P=s)|[ .-])\d{4}(?![\w-]|[.,/:]\d)"
)
_PHONE_TRUNK_RE = re.compile(
    r"(?<![\w+.,/-])(?:\(0[1-9]\d{0,3}\) ?|0[1-9]\d{0,3}[ ./-])\d{2,8}(?:[ .-]\d{2,8}){0,4}"
    r"(?![\w-]|[.,/:]\d)"
)
_PHONE_ES_RE = re.compile(
    r"(?<![\w+.,/-])[6-9]\d{2}(?P<g>[ -])\d{2,3}(?P=g)\d{2,3}(?:(?P=g)\d{2})?"
    r"(?![\w-]|[.,/:]\d)"
)
_DATE_IN_RE = re.compile(
    r"(?<!\d)(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d\d|(?:19|20)\d\d[./-]\d{1,2}[./-]\d{1,2})(?!\d)"
)
_CURRENCY_BEFORE_RE = re.compile(r"(?:[$€£¥₹]|\b(?:USD|EUR|GBP|CHF|JPY|SEK|NOK|DKK|PLN))\s?$")
_CURRENCY_AFTER_RE = re.compile(
    r"^\s?(?:[$€£¥₹]|(?:USD|EUR|GBP|CHF|JPY|SEK|NOK|DKK|PLN|eur|usd|euros?|dollars?|pounds?)\b)"
)
_SEP_RE = re.compile(r"[^\d()]+")


def _phone_ok(text: str, start: int, end: int, lo: int, hi: int, *, lists: bool) -> bool:
    raw = text[start:end]
    digits = sum(c.isdigit() for c in raw)
    if not lo <= digits <= hi or _DATE_IN_RE.search(raw):
        return False
    if _CURRENCY_BEFORE_RE.search(text, max(0, start - 5), start) or _CURRENCY_AFTER_RE.match(
        text[end : end + 9]
    ):
        return False
    if lists and "(" not in raw and " " in raw:
        # space-separated groups inside a longer list of numbers: a table row, not a phone
        before = text[max(0, start - 2) : start]
        after = text[end : end + 2]
        if (len(before) == 2 and before[0].isdigit() and before[1] == " ") or (
            len(after) == 2 and after[0] == " " and after[1].isdigit()
        ):
            return False
    return True


def _find_phone(text: str, out: _Spans, pos: int = 0, endpos: int | None = None) -> None:
    end = len(text) if endpos is None else endpos
    for m in _PHONE_INTL_RE.finditer(text, pos, end):
        start, end = m.span()
        raw = m.group()
        if raw.startswith("00") and not any(c in raw for c in " .-("):
            continue
        if _phone_ok(text, start, end, 8, 16 if "(" in raw else 15, lists=False):
            out.append((start, end, "PHONE"))
    for m in _PHONE_NANP_RE.finditer(text, pos, end):
        if _phone_ok(text, m.start(), m.end(), 10, 11, lists=True):
            out.append((m.start(), m.end(), "PHONE"))
    for m in _PHONE_TRUNK_RE.finditer(text, pos, end):
        raw = m.group()
        seps = _SEP_RE.findall(raw.split(")", 1)[1] if raw.startswith("(") else raw)
        if len(set(seps[1:])) > 1:  # separators change after the area code
            continue
        if _phone_ok(text, m.start(), m.end(), 9, 13, lists=True):
            out.append((m.start(), m.end(), "PHONE"))
    for m in _PHONE_ES_RE.finditer(text, pos, end):
        groups = [len(g) for g in re.split(r"[ -]", m.group())]
        if groups not in ([3, 3, 3], [3, 2, 2, 2]):
            continue
        if _phone_ok(text, m.start(), m.end(), 9, 9, lists=True):
            out.append((m.start(), m.end(), "PHONE"))


#: Digits with the separators cards and phone numbers use: where those two detectors look.
_NUMBER_CLUSTER_RE = re.compile(r"[+(]{0,2}\d[\d ()./-]{6,}\d")


def _find_numbers(text: str, out: _Spans) -> None:
    for c in _NUMBER_CLUSTER_RE.finditer(text):
        digits = sum(ch.isdigit() for ch in c.group())
        if digits < 8:
            continue
        start, end = c.start(), min(len(text), c.end() + 2)  # +2: room for the lookaheads
        if digits >= 13:
            _find_card(text, out, start, end)
        _find_phone(text, out, start, end)


# --------------------------------------------------------------------------------------------
# NATIONAL_ID
# --------------------------------------------------------------------------------------------

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_CF_DIGIT = "[0-9LMNPQRSTUV]"
#: One scan for all national ID shapes; each group is then checked in Python.
_ID_RE = re.compile(
    r"(?<![\w-])(?:"
    r"(?P<ssn>(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4})"
    r"|(?P<nino>(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"(?:\d{6}|(?: \d\d){3} )[A-D])"
    r"|(?P<nino_lower>[a-z]{2}\d{6}[a-d])"
    r"|(?P<dni>(?:\d{8}|[XYZxyz]\d{7})(?:[ -]?[A-Z]|[a-z]))"
    rf"|(?P<cf>(?i:[A-Z]{{6}}{_CF_DIGIT}{{2}}[A-EHLMPR-T]{_CF_DIGIT}{{2}}[A-Z]"
    rf"{_CF_DIGIT}{{3}}[A-Z]))"
    r")(?![\w-])"
)
_CF_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20,
         11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23),
        strict=True,
    )
)  # fmt: skip


def dni_valid(value: str) -> bool:
    """True for a Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter)."""
    value = value.upper().replace(" ", "").replace("-", "")
    if len(value) != 9:
        return False
    head = value[:8]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    return head.isdigit() and _DNI_LETTERS[int(head) % 23] == value[8]


def codice_fiscale_valid(value: str) -> bool:
    """True when the 16-character Italian codice fiscale has the right check character."""
    value = value.upper()
    if len(value) != 16 or not value.isalnum():
        return False
    total = 0
    for i, ch in enumerate(value[:15]):
        if i % 2 == 0:  # odd positions, counting from 1
            total += _CF_ODD[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - 65
    return chr(65 + total % 26) == value[15]


def _nino_prefix_ok(prefix: str) -> bool:
    prefix = prefix.upper()
    return (
        prefix[0] not in "DFIQUV"
        and prefix[1] not in "DFIOQUV"
        and prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
    )


def _find_national_id(text: str, out: _Spans) -> None:
    for m in _ID_RE.finditer(text):
        kind = m.lastgroup
        raw = m.group()
        if (
            kind in ("ssn", "nino")
            or (kind == "nino_lower" and _nino_prefix_ok(raw[:2]))
            or (kind == "dni" and dni_valid(raw))
            or (kind == "cf" and any(c.isdigit() for c in raw) and codice_fiscale_valid(raw))
        ):
            out.append((m.start(), m.end(), "NATIONAL_ID"))


# --------------------------------------------------------------------------------------------
# SECRET: high-entropy runs, password-like tokens, credential assignments
# --------------------------------------------------------------------------------------------

_RUN_RE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,}={0,2}")
_HEX_RE = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_HEX_RUN_RE = re.compile(r"[0-9a-f]{5,}|[0-9A-F]{5,}")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_PATH_PIECE_RE = re.compile(r"[^/]+")
_DIGEST_BEFORE_RE = re.compile(r"(?:sha1|sha224|sha256|sha384|sha512|md5)[:-]$", re.IGNORECASE)
_DIGEST_PREFIX_RE = re.compile(r"(?:sha1|sha224|sha256|sha384|sha512|md5)[:-]", re.IGNORECASE)
_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_WORD_EDGES_RE = re.compile(r"^(?:[a-z]{2,}[-_])+|(?:[-_][a-z]{2,})+$")


def shannon_entropy(s: str) -> float:
    """Shannon entropy of the character distribution of ``s``, in bits per character."""
    n = len(s)
    if not n:
        return 0.0
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _char_class(ch: str) -> int:
    if ch.isdigit():
        return 0
    if ch.islower():
        return 1
    if ch.isupper():
        return 2
    return 3


def class_switch_rate(s: str) -> float:
    """Share of adjacent alphanumeric pairs in ``s`` whose classes (lower/upper/digit) differ."""
    pairs = switches = 0
    prev = -1
    for ch in s:
        cls = _char_class(ch) if ch.isalnum() else 3
        if cls != 3 and prev != 3 and prev != -1:
            pairs += 1
            switches += cls != prev
        prev = cls
    return switches / pairs if pairs else 0.0


def is_high_entropy(run: str) -> bool:
    """True when ``run`` (base64/base64url/hex alphabet) looks random enough to be a secret."""
    if len(run) < 20:
        return False
    has_digit = has_alpha = False
    for ch in run:
        if ch.isdigit():
            has_digit = True
        elif ch.isalpha():
            has_alpha = True
    if not (has_digit and has_alpha):
        return False
    if _HEX_RE.fullmatch(run):
        return len(run) >= 32 and shannon_entropy(run) >= HEX_ENTROPY_MIN
    if _UUID_RE.fullmatch(run):
        return False
    if shannon_entropy(run) < ENTROPY_MIN or class_switch_rate(run) < SWITCH_MIN:
        return False
    # a path of words and numbers (GigabitEthernet1/0/24), not base64 with "/" in it
    return "/" not in run or any(_made_up_segment(p) for p in _SEGMENT_RE.findall(run))


def _find_high_entropy(text: str, out: _Spans) -> None:
    for m in _RUN_RE.finditer(text):
        run = m.group()
        if (
            _DIGEST_BEFORE_RE.search(text, max(0, m.start() - 8), m.start())
            or _DIGEST_PREFIX_RE.match(run)
            or _TRACEPARENT_RE.fullmatch(run)
        ):
            continue  # sha256:<hex>, sha512-<base64> (content digests), W3C traceparent
        if "/" in run and _find_in_path(run, m.start(), out):
            continue
        # judge without leading/trailing lowercase words (billing-worker-7d9f8b6c5d-x2k4p)
        if is_high_entropy(_WORD_EDGES_RE.sub("", run)):
            out.append((m.start(), m.end(), "SECRET"))


def _find_in_path(run: str, base: int, out: _Spans) -> bool:
    """In a run with ``/`` whose other parts read as words (``hooks/<token>/run``), flag only the
    random parts; return False when the run must be judged whole (base64 with ``/`` in it)."""
    hits: _Spans = []
    for p in _PATH_PIECE_RE.finditer(run):
        piece = p.group()
        if len(piece) >= 20 and is_high_entropy(_WORD_EDGES_RE.sub("", piece)):
            hits.append((base + p.start(), base + p.end(), "SECRET"))
        elif any(_made_up_segment(seg) for seg in _SEGMENT_RE.findall(piece)):
            return False
    out.extend(hits)
    return bool(hits)


_TOKEN_RE = re.compile(r"\S{6,}")
#: A few of the most used passwords, with digits or symbols after them and letters written as
#: digits or symbols (``hunter2``, ``Passw0rd``, ``letmein123``): too short or too plain for
#: the rule above, too common to let through. Only tokens holding a digit are looked at.
_COMMON_PASSWORD_RE = re.compile(
    r"(?i)(?:p[a@4][s$5]{2}w[o0]r[dt]|l[e3]tm[e3][i1]n|w[e3]lc[o0]m[e3]|qw[e3]rty|[i1]l[o0]v[e3]y[o0]u"
    r"|ch[a@4]ng[e3]m[e3]|trustn[o0]|hunt[e3]r|sunsh[i1]n[e3]|pr[i1]nc[e3][s$5]{2}|f[o0]{2}tb[a@4]ll)"
    r"[\d!@#$%^&*?._-]*"
)
_DIGIT_RE = re.compile(r"\d")
_LEAD = "\"'([{<`"
_TRAIL = "\"')]}>`,;:.?"
_PW_SYMBOLS = frozenset("!@#$%^&*?~|\\")
_ORDINARY_RE = re.compile(
    r"""(?x)
    (?i:[a-z][a-z0-9+.-]*://\S*|www\.\S+|mailto:\S+)              # URL
    | [A-Za-z0-9][\w.%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:[a-z]{2,}|[A-Z]{2,})  # e-mail
    | (?:~|\.{1,2})?/[\w.~@+%-]+(?:/[\w.~@+%-]*)*                 # POSIX path
    | [A-Za-z]:\\\S* | \\\\\S+                                    # Windows path
    | [0-9TZ:.,+/-]+                                              # date and time
    | \d{1,2}(?::\d\d){1,2}(?:[ap]\.?m\.?)?(?:[-/]\d{1,2}(?::\d\d){0,2}(?:[ap]\.?m\.?)?)?
    | [vV]?\d+(?:\.\d+)+(?:[-+~._][0-9A-Za-z]+)*                  # version
    | [-+]?(?:[$€£¥₹]|[A-Z]{3}\ ?)\d[\d,.]*(?:[kKmMbB]n?)?         # money
    | [-+]?\d[\d,.]*(?:[kKmMbB]n?)?(?:[$€£¥₹%]|USD|EUR|GBP)        # money, percent
    | \d+(?:\.\d+)?[xX×]\d+(?:\.\d+)?(?:[xX×]\d+)?\w*             # size
    | %\w+%[\\/]\S* | \$\{?\w+\}?/\S*                             # %APPDATA%\x, ${BASE}/x
    | [\w.]+\((?:[rbfuRBFU]{0,2}["'].*)                             # call with a string literal
    | =[A-Z][A-Z0-9.]*\(\S*                                       # spreadsheet formula
    | 0[xX][0-9a-fA-F]+                                           # hex literal
    | (?i:sha\d+|md5)[:-][A-Za-z0-9+/=_-]+                         # content digest
    | [0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}                       # MAC address
    | (?:(?i:ctrl|alt|shift|cmd|command|option|opt|win|super|meta|fn)\+)+\w+  # shortcut
    | [0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?:%\w+)?(?:/\d+)?  # IPv6 address
    | [a-z0-9]+(?:-[a-z0-9]+)*-[0-9a-f]{8,10}-[a-z0-9]{5}          # Kubernetes pod
    | [0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}         # UUID
    """
)
_PARAM_HEAD_RE = re.compile(
    r"(?:\?|--?)?(?:[a-z][a-z0-9_.%-]*|[A-Z][A-Z0-9_.%-]*|[a-z]+(?:[A-Z][a-z]{2,})+)="
)
_PARAM_SPLIT_RE = re.compile(r"&(?=[\w.%-]+=)")
_AMPERSAND_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{1,3}&[A-Z]{1,3}(?![A-Za-z0-9])")
#: user@host, unit@instance, package@^1.2.3: all lowercase
_AT_OK_RE = re.compile(
    r"@?[a-z0-9][a-z0-9._/-]*@(?:[a-z][a-z0-9._-]*(?::\S*)?|[~^]?\d+(?:\.[\dx*]+)*(?:-[\w.]+)?)"
)
_SHELL_VAR_RE = re.compile(r"[{(\d]|[A-Z0-9_]+(?![A-Za-z0-9])|[a-z0-9_]+(?![A-Za-z0-9])")
_URL_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_URLISH_RE = re.compile(r"[/=?.]|%[0-9A-Fa-f]{2}.*%[0-9A-Fa-f]{2}")
#: Two different separators side by side that no ordinary syntax writes (``a+-b``, ``x=.y``).
_ODD_PAIRS = frozenset(
    a + b for a in "+=-_.~" for b in "+=-_.~" if a != b and a + b not in ("+=", "-=", "-.", ".-")
)
_SHEET_REF_RE = re.compile(r"\$?[A-Z]{1,3}(?:\$?\d+|:\$?[A-Z]{1,3})")
#: camelCase, PascalCase, acronyms, numbers and units: iPhone15Pro, XMLHttpRequest, 5000mAh
_CAMEL_RE = re.compile(
    r"[a-z]*+(?:[A-Z][a-z]{2,}+|(?>[A-Z]+(?=[A-Z][a-z]))|[A-Z]++(?![a-z])|\d++)*+"
    r"(?:(?<=[a-z\d])[A-Z][a-z]|(?<=\d)[a-z]+)?"
)
_UNIT_RE = re.compile(r"\d+[A-Za-z]{1,4}")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9]+")
_LETTER_DIGIT_RE = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _made_up_segment(segment: str) -> bool:
    """True when an alphanumeric part does not read like a word, a number, a code or an
    identifier: mixed case that is not camelCase (``GfVhtbx``), or lowercase and digits
    alternating like leetspeak (``s3cr3t``, ``Tr0ub4dor``)."""
    if len(segment) < 4:
        return False
    lower = upper = False
    for ch in segment:
        if ch.islower():
            lower = True
        elif ch.isupper():
            upper = True
    if lower and upper and not (_CAMEL_RE.fullmatch(segment) or _UNIT_RE.fullmatch(segment)):
        return True
    if not lower or len(segment) < 6 or _HEX_RE.fullmatch(segment):
        return False
    return len(_LETTER_DIGIT_RE.findall(segment)) >= 4


def _odd_symbol(core: str, *, params: bool = False) -> bool:
    """True when a symbol sits where ordinary text does not put one: a password symbol inside
    a word (``Zq7!canary``; ``user@host`` and ``pkg@^1.2`` aside), ``+`` or ``=`` between
    characters outside code operators and ``name=value``, or two different separators side by
    side that no syntax uses (``+-``)."""
    last = len(core) - 1
    at_ok = "@" in core and _AT_OK_RE.fullmatch(core) is not None
    for i, ch in enumerate(core):
        if ch.isalnum() or (at_ok and ch in "@^~"):
            continue
        prev = core[i - 1] if i else ""
        nxt = core[i + 1] if i < last else ""
        if ch in _PW_SYMBOLS:
            if i == 0 and (ch in "#@~" or (ch == "$" and _SHELL_VAR_RE.match(core, 1))):
                continue  # #hashtag, @mention, ~/path, $HOME, ${VAR}, $(cmd), $1
            if ch == "%" and _URL_ESCAPE_RE.match(core, i) and _URLISH_RE.search(core):
                continue  # Q3%20Report.docx
            if ch == "&" and (_AMPERSAND_RE.search(core) or params):
                continue  # AT&T, R&D, a=1&b=2
            if ch == "!" and nxt == "=":
                continue  # a != b
            if ch == "@" and nxt == "{":
                continue  # stash@{1}
            if ch == "!" and core[0] == "=" and _SHEET_REF_RE.match(core, i + 1):
                continue  # =VLOOKUP(A2,Sheet2!A:C,3)
            if ch == "~" and core[i + 1 :].isdigit() and prev.isupper():
                continue  # HEAD~3
            return True
        if ch == "+" and 0 < i < last and prev != "+" and nxt not in "+=":
            return True
        if (
            ch == "="
            and 0 < i < last
            and not params
            and prev not in "=!<>+-*/:%"
            and nxt not in "=>"
        ):
            return True
        if ch + nxt in _ODD_PAIRS:
            return True
    return False


def is_password_like(token: str) -> bool:
    """True when a whitespace-delimited token looks like a password (see the module doc)."""
    core = token.lstrip(_LEAD).rstrip(_TRAIL)
    if _PARAM_HEAD_RE.match(core):  # name=value, a=1&b=2: judge the values, then the whole
        if any(_password_core(part.partition("=")[2]) for part in _PARAM_SPLIT_RE.split(core)):
            return True
        return _password_core(core, params=True)
    return _password_core(core)


def _password_core(core: str, *, params: bool = False) -> bool:
    if core.count(",") >= 2 and core[0] != "=":  # a CSV row: judge the cells
        return any(_password_core(cell) for cell in core.split(","))
    if len(core) < 8:
        return False
    lower = upper = digit = symbol = False
    for ch in core:
        if ch.isdigit():
            digit = True
        elif ch.islower():
            lower = True
        elif ch.isupper():
            upper = True
        else:
            symbol = True
    if not digit or not (lower or upper) or lower + upper + digit + symbol < 3:
        return False
    if _ORDINARY_RE.fullmatch(core.rstrip("!")):  # "at 1920x1080!" (but "Summer2024!" below)
        return False
    if _odd_symbol(core, params=params):
        return True
    if any(_made_up_segment(s) for s in _SEGMENT_RE.findall(core)):
        return True
    # both cases and digits, switching class at most steps: random characters
    if not (lower and upper):
        return False
    words = " ".join(s for s in _SEGMENT_RE.findall(core) if not _HEX_RUN_RE.fullmatch(s))
    return class_switch_rate(words) >= RANDOM_SWITCH_MIN


def _find_passwords(text: str, out: _Spans) -> None:
    for m in _TOKEN_RE.finditer(text):
        token = m.group()
        if _DIGIT_RE.search(token) and (
            is_password_like(token) or _COMMON_PASSWORD_RE.fullmatch(token.strip(_LEAD + _TRAIL))
        ):
            start = m.start() + len(token) - len(token.lstrip(_LEAD))
            core_end = m.start() + len(token.rstrip("\"')]}>`,;:"))
            out.append((start, core_end, "SECRET"))


_ASSIGN_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_-])*"
    r"(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credentials?)"
    r"[\"']?(?:(?P<eq>=)|(?P<sp>\s+=\s*|\s*:\s*))"
    r"(?:(?P<q>[\"'])(?P<qv>[^\"'\n]{3,})(?P=q)|(?P<v>[^\s\"'&;,]{3,}))"
)
_BEARER_RE = re.compile(r"(?<![A-Za-z0-9])(?:Bearer|Basic|Token) +(?P<v>[A-Za-z0-9._~+/=-]{16,})")
_USERINFO_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<v>[^\s/?#@:]+:[^\s/?#@]+)@")
_ASSIGN_WORDS = ("pass", "pwd", "secret", "token", "key", "credential", "bearer", "basic")
_NOT_VALUES = frozenset(["true", "false", "none", "null", "required", "optional", "changeme"])


def _find_assignments(text: str, out: _Spans) -> None:
    if "://" in text:
        out.extend((m.start("v"), m.end("v"), "SECRET") for m in _USERINFO_RE.finditer(text))
    lowered = text.lower()
    if not any(word in lowered for word in _ASSIGN_WORDS):
        return
    for m in _ASSIGN_RE.finditer(text):
        if m.group("qv") is not None:
            value, start = m.group("qv"), m.start("qv")
        else:
            value, start = m.group("v"), m.start("v")
            if m.group("eq") is None:
                # "token: x" or "token = x": a bare word there is prose or code, not a value
                if not any(not c.isalpha() for c in value) or value[0] in "$<{%(":
                    continue
                if m.group("sp") and "=" in m.group("sp"):
                    continue
        if value[0] in "$<{%" or value.lower() in _NOT_VALUES or set(value) <= {"*", "x", "X"}:
            continue
        out.append((start, start + len(value), "SECRET"))
    for m in _BEARER_RE.finditer(text):
        value = m.group("v")  # (only reached when "token" is in the text, or "Bearer"/"Basic")
        if any(c.isdigit() for c in value) or (value.lower() != value and value.upper() != value):
            out.append((m.start("v"), m.end("v"), "SECRET"))


def _find_secret(text: str, out: _Spans) -> None:
    _find_high_entropy(text, out)
    _find_passwords(text, out)
    _find_assignments(text, out)


# --------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------

_DETECTORS: tuple[Callable[[str, _Spans], None], ...] = (
    _find_numbers,
    _find_keys,
    _find_jwt,
    _find_email,
    _find_iban,
    _find_national_id,
    _find_secret,
)


def find_secrets(text: str) -> list[Finding]:
    """Secrets in ``text``, sorted by position and non-overlapping.

    Overlapping detections are merged into one finding that covers all of them; it takes the
    most specific kind among them (:data:`SPECIFICITY`), the longest on a tie."""
    if len(text) < 5:
        return []
    spans: _Spans = []
    for detect in _DETECTORS:
        detect(text, spans)
    if not spans:
        return []
    spans.sort()
    found: list[Finding] = []
    start, end, kind = spans[0]
    best = (_RANK[kind], start - end)
    for s, e, k in spans[1:]:
        if s < end:
            key = (_RANK[k], s - e)
            if key < best:
                best, kind = key, k
            end = max(end, e)
        else:
            found.append(Finding(kind, start, end))
            start, end, kind = s, e, k
            best = (_RANK[k], s - e)
    found.append(Finding(kind, start, end))
    return found


def redact(text: str) -> str:
    """``text`` with every finding of :func:`find_secrets` replaced by ``<KIND>``."""
    findings = find_secrets(text)
    if not findings:
        return text
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(f"<{f.kind}>")
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


#: Query and fragment parameter names whose values are always replaced by ``<SECRET>``
#: (compared lowercased, without ``-``, ``_`` and ``.``).
SENSITIVE_PARAMS = frozenset(
    [
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "key",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "clientsecret",
        "sig",
        "signature",
        "code",
        "authcode",
        "session",
        "sessionid",
        "sid",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "otp",
        "jwt",
        "ticket",
        "nonce",
        "xamzsignature",
        "xamzcredential",
        "xamzsecuritytoken",
        "xgoogsignature",
        "xgoogcredential",
    ]
)
_SENSITIVE_SUFFIXES = ("token", "secret", "password", "passwd", "apikey", "signature", "sessionid")
_URL_HEAD_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")


def _sensitive_param(name: str) -> bool:
    norm = unquote_plus(name).lower().replace("-", "").replace("_", "").replace(".", "")
    return norm in SENSITIVE_PARAMS or norm.endswith(_SENSITIVE_SUFFIXES)


def _redact_params(params: str) -> str:
    out = []
    for part in params.split("&"):
        name, eq, value = part.partition("=")
        if eq and value and _sensitive_param(name):
            out.append(f"{name}=<SECRET>")
        elif eq and "%" in value:
            decoded = unquote_plus(value)
            red = redact(decoded)
            out.append(f"{name}={quote(red, safe='<>@:/')}" if red != decoded else part)
        else:
            out.append(part)
    return "&".join(out)


def redact_url(url: str) -> str:
    """A URL with secrets removed: :func:`redact`, plus the values of sensitive query and
    fragment parameters (:data:`SENSITIVE_PARAMS`, names ending in ``token``, ``secret`` ...)
    replaced by ``<SECRET>`` and any ``user:password@`` (or ``user@``) replaced by
    ``<SECRET>@``. Percent-encoded values are decoded to look for secrets inside them."""
    head = ""
    m = _URL_HEAD_RE.match(url)
    if m:
        head = m.group("scheme") + ("<SECRET>@" if m.group("userinfo") else "@")
        url = url[m.end() :]
    base, hash_, fragment = url.partition("#")
    path, qmark, query = base.partition("?")
    if query:
        query = _redact_params(query)
    if "=" in fragment:
        lead = len(fragment) - len(fragment.lstrip("!/?"))
        fragment = fragment[:lead] + _redact_params(fragment[lead:])
    return redact(head + path + qmark + query + hash_ + fragment)


# --------------------------------------------------------------------------------------------
# mask_text
# --------------------------------------------------------------------------------------------


class _MaskTable(dict[int, str]):
    """``str.translate`` table computing each character's class on first sight."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        if ch.isspace():
            value = ch
        elif ch.isalpha():
            value = "a"
        elif ch.isdigit():
            value = "9"
        else:
            value = "."
        if len(self) < 65536:
            self[code] = value
        return value


_MASK = _MaskTable()
for _code in range(128):
    _MASK[_code] = _MASK.__missing__(_code)


def mask_text(text: str) -> str:
    """``text`` with each character replaced by its class: letters by ``a``, digits by ``9``,
    anything else but whitespace by ``.``; whitespace is kept as it is."""
    return text.translate(_MASK)


def redact_name(text: object, mode: str) -> str | None:
    """A name shown on screen (a menu item, a page element's label or id, a select's option), as
    an app's keystroke ``mode`` allows it to be kept: through the redactor (``text``), masked
    (``masked``), or not at all (``keys``, or no name)."""
    if text is None or mode == "keys":
        return None
    value = str(text)
    value = redact_url(value) if "://" in value else redact(value)
    return mask_text(value) if mode == "masked" else value
