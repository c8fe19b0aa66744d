"""Generated secrets, work-like text around them, and typing with corrections.

Shared by ``tests/test_redact.py`` (through Hypothesis' ``randoms()``) and ``bench/redact_fp.py``.
Every generator takes a :class:`random.Random` and returns a valid value of its kind: card
numbers pass Luhn, IBANs pass mod-97, SSNs avoid the unassigned areas, and so on. Nothing here
is real: numbers and names are random.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

from demotrace.privacy.keys import BACKSPACE

_WORDS_TEXT = """
the quarterly report budget review meeting agenda notes follow up customer ticket invoice
shipment warehouse release deploy server dashboard metrics sprint backlog design draft
contract supplier payroll onboarding training laptop printer monitor calendar schedule
project roadmap feature request bug fix patch migration database backup restore policy
approval signature deadline friday monday tomorrow morning afternoon please thanks regards
team manager update status pending closed resolved urgent minor major summary figures
spreadsheet column total average forecast revenue expenses margin quote order delivery
account login profile settings network storage cluster container pipeline build test
"""
WORDS = _WORDS_TEXT.split()
FILLER_NUMBERS = [
    "42", "3.5", "2024-05-17", "14:30", "v1.2.3", "$1,299.00", "12%", "Q3", "#4512",
    "1920x1080", "10:15-11:00", "17/05/2024", "3 pm", "20 kg", "1.5 GB", "250 ms", "x2",
]  # fmt: skip
PUNCT = [".", ",", ";", ":", "!", "?", " -", ""]

# --------------------------------------------------------------------------------------------
# secrets, one generator per kind
# --------------------------------------------------------------------------------------------


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload + digit`` Luhn-valid."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


_CARD_PREFIXES = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16),
                  ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("36", 14),
                  ("62", 17), ("81", 16)]  # fmt: skip


def card_number(rng: random.Random) -> str:
    """A Luhn-valid card number with a real issuer prefix and random grouping."""
    prefix, length = rng.choice(_CARD_PREFIXES)
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = body + luhn_check_digit(body)
    style = rng.randrange(4)
    if style == 0:
        return digits
    sep = rng.choice(" -")
    if style == 1:
        sizes = [4, 6, 5] if length == 15 else [4] * (length // 4) + [length % 4]
    elif style == 2:
        sizes = [4] * (length // 4) + [length % 4]
    else:  # random groups of 2-6
        sizes = []
        left = length
        while left > 0:
            n = min(left, rng.randint(2, 6))
            sizes.append(n)
            left -= n
    groups, i = [], 0
    for n in sizes:
        if n:
            groups.append(digits[i : i + n])
            i += n
    return sep.join(groups)


_IBAN_BBAN = {"DE": "n18", "GB": "a4n14", "FR": "n10c11n2", "NL": "a4n10"}


def _bban(rng: random.Random, spec: str) -> str:
    out = []
    i = 0
    while i < len(spec):
        kind = spec[i]
        j = i + 1
        while j < len(spec) and spec[j].isdigit():
            j += 1
        n = int(spec[i + 1 : j])
        alphabet = {"n": string.digits, "a": string.ascii_uppercase}.get(
            kind, string.digits + string.ascii_uppercase
        )
        out.append("".join(rng.choice(alphabet) for _ in range(n)))
        i = j
    return "".join(out)


def iban_check(country: str, bban: str) -> str:
    """The two check digits of an IBAN (ISO 7064 mod 97-10)."""
    number = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(number) % 97:02d}"


def iban(rng: random.Random) -> str:
    """A valid IBAN for DE, GB, FR or NL, compact or in groups of 4, sometimes lowercase."""
    country = rng.choice(sorted(_IBAN_BBAN))
    bban = _bban(rng, _IBAN_BBAN[country])
    value = country + iban_check(country, bban) + bban
    if rng.random() < 0.5:
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    if rng.random() < 0.15:
        value = value.lower()
    return value


def email(rng: random.Random) -> str:
    """A usual address: first.last, initials, digits, plus tags, sub-domains."""
    first, last = rng.choice(WORDS), rng.choice(WORDS)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last}{rng.randint(1, 99)}",
            f"{first}+{last}",
            f"{first}{rng.randint(1970, 2005)}",
        ]
    )
    domain = rng.choice(["example.com", "mail.example.org", "corp.example.co.uk", "example.io"])
    return f"{local}@{domain}"


def phone(rng: random.Random) -> str:
    """A phone number in one of the international or national shapes people write."""

    def d(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))

    def nz(n: int) -> str:
        return rng.choice("23456789") + d(n - 1)

    shapes: list[Callable[[], str]] = [
        lambda: f"+1 {nz(3)} {nz(3)} {d(4)}",
        lambda: f"+1 ({nz(3)}) {nz(3)}-{d(4)}",
        lambda: f"+1-{nz(3)}-{nz(3)}-{d(4)}",
        lambda: f"+44 20 {d(4)} {d(4)}",
        lambda: f"+44 7{d(3)} {d(6)}",
        lambda: f"+44 (0)20 {d(4)} {d(4)}",
        lambda: f"+49 1{d(2)} {d(8)}",
        lambda: f"+49 30 {d(7)}",
        lambda: f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"+31 6 {d(8)}",
        lambda: f"+34 {rng.choice('67')}{d(2)} {d(3)} {d(3)}",
        lambda: f"+{nz(2)}{d(9)}",
        lambda: f"0044 20 {d(4)} {d(4)}",
        lambda: f"({nz(3)}) {nz(3)}-{d(4)}",
        lambda: f"{nz(3)}-{nz(3)}-{d(4)}",
        lambda: f"{nz(3)}.{nz(3)}.{d(4)}",
        lambda: f"{nz(3)} {nz(3)} {d(4)}",
        lambda: f"1-800-{nz(3)}-{d(4)}",
        lambda: f"020 {d(4)} {d(4)}",
        lambda: f"07{d(3)} {d(6)}",
        lambda: f"030 {d(7)}",
        lambda: f"0151 {d(8)}",
        lambda: f"(030) {d(7)}",
        lambda: f"06 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"06-{d(8)}",
        lambda: f"{rng.choice('67')}{d(2)} {d(3)} {d(3)}",
        lambda: f"{rng.choice('67')}{d(2)} {d(2)} {d(2)} {d(2)}",
    ]
    return rng.choice(shapes)()


_NINO_FIRST = [c for c in string.ascii_uppercase if c not in "DFIQUV"]
_NINO_SECOND = [c for c in string.ascii_uppercase if c not in "DFIOQUV"]
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_CF_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20,
         11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23),
        strict=True,
    )
)  # fmt: skip


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def nino(rng: random.Random) -> str:
    while True:
        prefix = rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)
        if prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return prefix + digits + suffix


def dni(rng: random.Random) -> str:
    if rng.random() < 0.3:
        lead = rng.choice("XYZ")
        digits = "".join(rng.choice(string.digits) for _ in range(7))
        number = int(str("XYZ".index(lead)) + digits)
        return lead + digits + _DNI_LETTERS[number % 23]
    number = rng.randint(0, 99_999_999)
    return f"{number:08d}{rng.choice(['', '-'])}{_DNI_LETTERS[number % 23]}"


def codice_fiscale(rng: random.Random) -> str:
    letters = string.ascii_uppercase
    body = (
        "".join(rng.choice(letters) for _ in range(6))
        + f"{rng.randint(0, 99):02d}"
        + rng.choice("ABCDEHLMPRST")
        + f"{rng.randint(1, 71):02d}"
        + rng.choice(letters)
        + f"{rng.randint(100, 999)}"
    )
    total = sum(
        _CF_ODD[c] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65)
        for i, c in enumerate(body)
    )
    return body + chr(65 + total % 26)


def national_id(rng: random.Random) -> str:
    """A US SSN, UK NINO, Spanish DNI/NIE or Italian codice fiscale."""
    return rng.choice([ssn, nino, dni, codice_fiscale])(rng)


_ALNUM = string.ascii_letters + string.digits


def _body(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    """``n`` random characters of ``alphabet``, with at least one digit and one letter of each
    case the alphabet has (a random body of 20+ characters has them all but rarely)."""
    chars = [rng.choice(alphabet) for _ in range(n)]
    musts = [c for c in (string.digits, string.ascii_lowercase, string.ascii_uppercase) if
             set(c) & set(alphabet)]  # fmt: skip
    if n >= 2 * len(musts):
        for i, group in enumerate(musts):
            chars[i] = rng.choice([c for c in group if c in alphabet])
        rng.shuffle(chars)
    return "".join(chars)


KEY_SHAPES: dict[str, Callable[[random.Random], str]] = {
    "sk-": lambda r: "sk-" + r.choice(["", "proj-", "ant-api03-"]) + _body(r, 48, _ALNUM + "_-"),
    "sk_live_": lambda r: "sk_live_" + _body(r, 24),
    "sk_test_": lambda r: "sk_test_" + _body(r, 24),
    "pk_live_": lambda r: "pk_live_" + _body(r, 24),
    "rk_live_": lambda r: "rk_live_" + _body(r, 24),
    "ghp_": lambda r: "ghp_" + _body(r, 36),
    "gho_": lambda r: "gho_" + _body(r, 36),
    "ghu_": lambda r: "ghu_" + _body(r, 36),
    "ghs_": lambda r: "ghs_" + _body(r, 36),
    "ghr_": lambda r: "ghr_" + _body(r, 36),
    "github_pat_": lambda r: "github_pat_" + _body(r, 22) + "_" + _body(r, 59),
    "glpat-": lambda r: "glpat-" + _body(r, 20, _ALNUM + "_-"),
    "xoxb-": lambda r: (
        f"xoxb-{_body(r, 12, string.digits)}-{_body(r, 13, string.digits)}-" + _body(r, 24)
    ),
    "xoxp-": lambda r: (
        f"xoxp-{_body(r, 12, string.digits)}-{_body(r, 12, string.digits)}-"
        + _body(r, 32, "0123456789abcdef")
    ),
    "xapp-": lambda r: (
        f"xapp-1-{_body(r, 11)}-{_body(r, 13, string.digits)}-" + _body(r, 64, "0123456789abcdef")
    ),
    "AKIA": lambda r: "AKIA" + _body(r, 16, string.ascii_uppercase + string.digits),
    "ASIA": lambda r: "ASIA" + _body(r, 16, string.ascii_uppercase + string.digits),
    "AIza": lambda r: "AIza" + _body(r, 35, _ALNUM + "_-"),
    "ya29.": lambda r: "ya29." + _body(r, 60, _ALNUM + "_-"),
    "npm_": lambda r: "npm_" + _body(r, 36),
    "pypi-": lambda r: "pypi-AgEIcHlwaS5vcmc" + _body(r, 60, _ALNUM + "_-"),
    "hf_": lambda r: "hf_" + _body(r, 34),
    "SG.": lambda r: "SG." + _body(r, 22, _ALNUM + "_-") + "." + _body(r, 43, _ALNUM + "_-"),
    "PEM": lambda r: (
        "-----BEGIN "
        + r.choice(["", "RSA ", "EC ", "OPENSSH "])
        + "PRIVATE KEY-----\n"
        + "\n".join(_body(r, 64, _ALNUM + "+/") for _ in range(r.randint(2, 5)))
        + "\n-----END PRIVATE KEY-----"
    ),
}


def api_key(rng: random.Random, prefix: str | None = None) -> str:
    """An API key or token with one of the known prefixes (random if ``prefix`` is None)."""
    return KEY_SHAPES[prefix or rng.choice(sorted(KEY_SHAPES))](rng)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    """A JWT from random JSON claims and random signature bytes."""
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    claims: dict[str, object] = {"sub": str(rng.randint(1, 10**9))}
    for _ in range(rng.randint(0, 4)):
        claims[rng.choice(WORDS)] = rng.choice(
            [rng.randint(0, 10**6), rng.choice(WORDS), rng.random() < 0.5]
        )
    sig = bytes(rng.randrange(256) for _ in range(rng.choice([32, 64])))
    parts = [json.dumps(header, separators=(",", ":")), json.dumps(claims, separators=(",", ":"))]
    return ".".join(_b64url(p.encode()) for p in parts) + "." + _b64url(sig)


#: The special characters of common password managers' defaults.
MANAGER_SYMBOLS = "!@#$%^&*"
#: A wider set, with the separators that also occur in ordinary codes and file names.
ANY_SYMBOLS = "!@#$%^&*?~+=-_."
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}


def password_random(rng: random.Random, symbols: str = MANAGER_SYMBOLS) -> str:
    """Random characters as a password manager makes them: 12-20, all four classes."""
    n = rng.randint(12, 20)
    chars = [
        rng.choice(string.ascii_lowercase),
        rng.choice(string.ascii_uppercase),
        rng.choice(string.digits),
        rng.choice(symbols),
    ]
    chars += [rng.choice(_ALNUM + symbols) for _ in range(n - 4)]
    rng.shuffle(chars)
    return "".join(chars)


def password_random_any(rng: random.Random) -> str:
    """Random characters, 10-20, all four classes, symbols including ``- _ . + =``."""
    n = rng.randint(10, 20)
    chars = [
        rng.choice(string.ascii_lowercase),
        rng.choice(string.ascii_uppercase),
        rng.choice(string.digits),
        rng.choice(ANY_SYMBOLS),
    ]
    chars += [rng.choice(_ALNUM + ANY_SYMBOLS) for _ in range(n - 4)]
    rng.shuffle(chars)
    return "".join(chars)


def password_leet(rng: random.Random) -> str:
    """A word with letter-digit substitutions, a symbol, digits and a letter: Tr0ub4dor&3x."""
    word = rng.choice([w for w in WORDS if len(w) >= 5])
    leet = "".join(_LEET.get(c, c) if rng.random() < 0.6 else c for c in word)
    if sum(c.isdigit() for c in leet) < 2:
        leet = word[0] + "".join(_LEET.get(c, c) for c in word[1:])
    return (
        leet[0].upper()
        + leet[1:]
        + rng.choice("!@#$%&*?")
        + str(rng.randint(0, 99))
        + rng.choice(string.ascii_lowercase)
    )


def password_combo(rng: random.Random) -> str:
    """Random letters, a digit and a symbol around a word: Zq7!canary-Pw93."""
    word = rng.choice([w for w in WORDS if len(w) >= 5])
    return (
        rng.choice(string.ascii_uppercase)
        + rng.choice(string.ascii_lowercase)
        + rng.choice(string.digits)
        + rng.choice("!#$%&*?")
        + word
        + rng.choice("-_.")
        + rng.choice(string.ascii_uppercase)
        + rng.choice(string.ascii_lowercase)
        + str(rng.randint(10, 99))
    )


#: Password families: the first three are what the property test requires to be caught;
#: ``random_any`` is measured by the benchmark (see BENCHMARKS.md for its recall).
PASSWORD_FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "random": password_random,
    "leet": password_leet,
    "combo": password_combo,
    "random_any": password_random_any,
}


def password(rng: random.Random) -> str:
    """A strong password from one of the families the redactor guarantees to catch."""
    return rng.choice([password_random, password_leet, password_combo])(rng)


#: kind -> (generator, kinds whose placeholder is accepted). A password is random text and can
#: contain another secret's shape (an e-mail in ``aB3@xy.io!``); the longer span is then
#: labelled with the more specific kind, which still hides the password.
GENERATORS: dict[str, tuple[Callable[[random.Random], str], frozenset[str]]] = {
    "CARD": (card_number, frozenset({"CARD"})),
    "IBAN": (iban, frozenset({"IBAN"})),
    "EMAIL": (email, frozenset({"EMAIL"})),
    "PHONE": (phone, frozenset({"PHONE"})),
    "NATIONAL_ID": (national_id, frozenset({"NATIONAL_ID"})),
    "KEY": (api_key, frozenset({"KEY"})),
    "JWT": (jwt, frozenset({"JWT"})),
    "SECRET": (password, frozenset({"SECRET", "EMAIL", "PHONE", "KEY", "NATIONAL_ID", "CARD"})),
}

# --------------------------------------------------------------------------------------------
# text around a secret, and typing it
# --------------------------------------------------------------------------------------------


def filler(rng: random.Random, n_words: int) -> str:
    """Work-like words with punctuation and harmless numbers."""
    out = []
    for _ in range(n_words):
        token = rng.choice(FILLER_NUMBERS) if rng.random() < 0.15 else rng.choice(WORDS)
        out.append(token + (rng.choice(PUNCT) if rng.random() < 0.2 else ""))
    return " ".join(out)


def embed(rng: random.Random, secret: str) -> str:
    """``secret`` inside a sentence: filler, a plain word, the secret, a plain word, filler.
    The plain words keep harmless numbers from touching the secret (a number list around a
    phone number, or digits before a card, change what the secret is)."""
    before = filler(rng, rng.randint(0, 8))
    after = filler(rng, rng.randint(0, 8))
    left = rng.choice(WORDS)
    right = rng.choice(WORDS) + rng.choice(["", "", ".", ","])
    return " ".join(p for p in (before, left, secret, right, after) if p)


_KEYBOARD_NEIGHBOURS = "qwertyuiopasdfghjklzxcvbnm1234567890"


def type_with_corrections(rng: random.Random, text: str, typo_rate: float = 0.08) -> list[str]:
    """Keystroke tokens (characters and ``BackSpace``) that type ``text`` with typos: each
    typo is a wrong character, corrected either at once or after a few more characters (all
    of which are deleted and typed again). Applying the edits gives ``text`` back."""
    tokens: list[str] = []
    i = 0
    while i < len(text):
        if rng.random() < typo_rate:
            tokens.append(rng.choice(_KEYBOARD_NEIGHBOURS))
            ahead = rng.choice([0, 0, 1, 2, 3])
            extra = text[i : i + ahead]
            tokens.extend(extra)
            tokens.extend([BACKSPACE] * (len(extra) + 1))
        tokens.append(text[i])
        i += 1
    return tokens


def sample(rng: random.Random, kind: str) -> tuple[str, str]:
    """One secret of ``kind`` and a sentence containing it."""
    gen, _ = GENERATORS[kind]
    secret = gen(rng)
    return secret, embed(rng, secret)
