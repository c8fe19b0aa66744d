"""The policy file (load + validate + match) and the consent notice generated from it."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from demotrace.errors import PolicyError
from demotrace.privacy.notice import notice_dict, render_notice
from demotrace.privacy.policy import (
    KEYSTROKE_MODES,
    SCREENSHOT_MODES,
    Policy,
    default_policy_path,
    demo_policy_path,
    is_secret_title,
    load_policy,
    parse_hotkey,
    parse_policy,
    url_host,
)

BASE = """\
format = 1
revision = 3
name = "Acme support desk"
purpose = "Learn how support tickets are handled."
organisation = "Acme GmbH"
contact = "privacy@acme.example"
who_sees = "The Acme dataset team."
browsers = ["chromium", "firefox", "Navigator"]

[hours]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "18:00"

[defaults]
keystrokes = "text"
screenshots = "window"

[[apps]]
name = "Workbench"
class = ["Workbench"]

[[apps]]
name = "Terminal"
class = ["XTerm"]
titles = ["^xterm$"]
keystrokes = "keys"

[[apps]]
name = "LibreOffice"
class = ["libreoffice*"]
process = ["soffice.bin"]

[[sites]]
name = "Acme CRM"
domains = ["crm.acme.example", "*.tickets.acme.example"]
titles = ["Acme CRM"]
keystrokes = "masked"

[retention]
days = 14
max_gb = 1.5

[review]
hours = 12

[secrets]
classes = ["vaultapp"]
titles = ["secret dialog"]

[controls]
hotkey = "ctrl+alt+p"
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line number of the nth line containing needle."""
    hits = [i for i, line in enumerate(text.split("\n"), 1) if needle in line]
    return hits[nth - 1]


def error_of(text: str, source: str = "policy.toml") -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source)
    message = str(info.value)
    assert "\n" not in message  # one paragraph
    return message


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(BASE, "policy.toml")


# -- loading the shipped policies --------------------------------------------------------------
def test_default_policy_loads() -> None:
    p = load_policy()
    assert p.source == "<default policy>"
    assert p.format == 1 and p.revision >= 1
    names = [r.name for r in p.apps]
    assert any("LibreOffice" in n for n in names)
    assert not p.sites and p.hours is None
    assert (p.retention_days, p.retention_gb, p.review_hours) == (30, 2.0, 24.0)
    assert all(r.keystrokes == "text" and r.screenshots == "window" for r in p.apps)
    # conservative: no terminals, no browsers
    assert p.match_window("XTerm", "xterm", "xterm") is None
    assert p.match_window("Gnome-terminal", "gnome-terminal-server", "bash") is None
    assert p.match_window("firefox", "Navigator", "Mail - Firefox") is None
    assert p.match_window("libreoffice-writer", "libreoffice", "a.odt - LibreOffice Writer")
    assert p.match_window("Mousepad", "mousepad", "notes.txt - Mousepad")
    assert default_policy_path().is_file()
    assert load_policy(default_policy_path()).digest == p.digest


def test_demo_policy_loads_and_scopes_the_bench() -> None:
    p = load_policy(demo_policy_path())
    assert p.source == str(demo_policy_path())
    assert [r.name for r in p.apps] == ["Workbench", "Terminal"]
    assert (p.retention_days, p.retention_gb) == (7, 1.0)
    assert p.match_window("Workbench", "workbench", "Workbench").name == "Workbench"
    assert p.match_window("XTerm", "xterm", "xterm").name == "Terminal"
    assert p.match_window("XTerm", "xterm", "private shell") is None
    assert p.match_window("XTerm", "xterm", "xterm2") is None
    assert all(r.keystrokes == "text" and r.screenshots == "window" for r in p.apps)


def test_modes_constants() -> None:
    assert KEYSTROKE_MODES == ("text", "masked", "keys")
    assert SCREENSHOT_MODES == ("window", "off")


def test_fields_and_defaults(policy: Policy) -> None:
    assert (policy.name, policy.organisation, policy.contact) == (
        "Acme support desk",
        "Acme GmbH",
        "privacy@acme.example",
    )
    assert [(r.name, r.kind, r.keystrokes, r.screenshots) for r in policy.apps] == [
        ("Workbench", "app", "text", "window"),
        ("Terminal", "app", "keys", "window"),
        ("LibreOffice", "app", "text", "window"),
    ]
    site = policy.sites[0]
    assert (site.kind, site.keystrokes, site.path) == ("site", "masked", "sites[1]")
    assert (policy.retention_days, policy.retention_gb, policy.review_hours) == (14, 1.5, 12.0)
    assert policy.secret_classes == ("vaultapp",)
    assert policy.hours is not None and policy.hours.days == ("mon", "tue", "wed", "thu", "fri")
    minimal = parse_policy(BASE.split("[hours]")[0])
    assert minimal.hours is None and minimal.apps == () and minimal.sites == ()
    assert (minimal.retention_days, minimal.retention_gb, minimal.review_hours) == (30, 2.0, 24.0)
    assert minimal.hotkey == "ctrl+alt+p"


def test_version_and_summary(policy: Policy) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", policy.digest)
    assert policy.version == f"3-{policy.digest[:12]}"
    summary = policy.summary()
    json.dumps(summary)  # JSON-ready
    assert summary["version"] == policy.version
    assert summary["apps"][1] == {"name": "Terminal", "keystrokes": "keys", "screenshots": "window"}
    assert summary["sites"][0]["domains"] == ["crm.acme.example", "*.tickets.acme.example"]
    assert summary["retention"] == {"days": 14, "max_gb": 1.5}
    assert summary["hours"] == {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00",
                                "end": "18:00"}  # fmt: skip


def test_digest_ignores_comments_and_layout_but_not_values(policy: Policy) -> None:
    relaid = "# a comment at the top\n\n" + BASE.replace(
        "revision = 3", "revision   =   3   # bumped by hand"
    ).replace('class = ["Workbench"]', "class = [\n  'Workbench',\n]\n").replace("\n\n", "\n\n\n")
    assert parse_policy(relaid).digest == policy.digest
    assert parse_policy(relaid).version == policy.version
    changed = BASE.replace("days = 14", "days = 15")
    assert parse_policy(changed).digest != policy.digest
    renamed = BASE.replace('name = "Workbench"', 'name = "Work bench"')
    assert parse_policy(renamed).version != policy.version
    assert parse_policy(BASE.replace("revision = 3", "revision = 4")).version.startswith("4-")


# -- matching ----------------------------------------------------------------------------------
def test_match_by_class_instance_glob_and_case(policy: Policy) -> None:
    assert policy.match_window("Workbench", "workbench", "Form").name == "Workbench"
    assert policy.match_window("WORKBENCH", "x", "Form").name == "Workbench"  # case-insensitive
    assert policy.match_window("Other", "workbench", "Form").name == "Workbench"  # instance
    assert policy.match_window("libreoffice-calc", "libreoffice", "a.ods").name == "LibreOffice"
    assert policy.match_window("Soffice", "soffice", "x", process="soffice.bin").name == (
        "LibreOffice"
    )
    assert policy.match_window("Gimp", "gimp", "x", process="gimp") is None
    assert policy.match_window("Workbench2", "workbench2", "Form") is None  # no partial match


def test_match_title_rule(policy: Policy) -> None:
    assert policy.match_window("XTerm", "xterm", "xterm").name == "Terminal"
    assert policy.match_window("XTerm", "xterm", "root@host: ~") is None
    assert policy.match_window("XTerm", "xterm", "") is None
    assert policy.match_window("XTerm", "xterm", None) is None


def test_match_sites_in_browsers(policy: Policy) -> None:
    crm = "Acme CRM"
    assert (
        policy.match_window("chromium", "chromium", "x", url="https://crm.acme.example/a").name
        == crm
    )
    assert (
        policy.match_window("Chromium", "chromium", "x", url="https://CRM.acme.example:8443/").name
        == crm
    )
    # "*." matches the bare domain and any depth of subdomain
    for host in ("tickets.acme.example", "eu.tickets.acme.example", "a.b.tickets.acme.example"):
        assert policy.match_window("firefox", "Navigator", "x", url=f"https://{host}/q").name == crm
    for url in (
        "https://acme.example/",
        "https://evil-crm.acme.example/",
        "https://crm.acme.example.evil.test/",
        "https://notickets.acme.example/",
        "file:///crm.acme.example",
        "about:blank",
    ):
        assert policy.match_window("chromium", "chromium", "Acme CRM", url=url) is None, url
    # no URL known: the sites' title rules
    assert policy.match_window("chromium", "chromium", "Acme CRM - Chromium").name == crm
    assert policy.match_window("firefox", "Navigator", "News - Mozilla Firefox") is None
    # sites only apply in browsers
    assert policy.match_window("Mousepad", "mousepad", "Acme CRM") is None
    assert policy.match_window("Mousepad", "mousepad", "x", url="https://crm.acme.example") is None


def test_app_rules_come_first_in_browsers() -> None:
    text = BASE.replace('class = ["Workbench"]', 'class = ["Workbench", "chromium"]')
    p = parse_policy(text)
    assert p.match_window("chromium", "chromium", "x", url="https://crm.acme.example").name == (
        "Workbench"
    )


def test_url_host() -> None:
    assert url_host("https://User@Crm.Acme.Example.:443/path?q") == "crm.acme.example"
    assert url_host("crm.acme.example/path") == "crm.acme.example"
    assert url_host("localhost:8080/x") == "localhost"
    assert url_host("https://bücher.example/") == "xn--bcher-kva.example"
    for url in ("about:blank", "chrome://settings", "file:///etc/passwd", "data:text/html,x", ""):
        assert url_host(url) is None, url


def test_within_hours(policy: Policy) -> None:
    monday = dt.datetime(2025, 3, 3, 8, 0)
    assert monday.weekday() == 0
    assert policy.within_hours(monday)
    assert policy.within_hours(monday.replace(hour=17, minute=59, second=59))
    assert not policy.within_hours(monday.replace(hour=18))
    assert not policy.within_hours(monday.replace(hour=7, minute=59))
    assert not policy.within_hours(monday + dt.timedelta(days=5, hours=2))  # Saturday 10:00
    aware = monday.replace(hour=12).astimezone()  # local time, made aware
    assert policy.within_hours(aware)
    anytime = parse_policy(BASE.split("[hours]")[0])
    assert anytime.within_hours(dt.datetime(2025, 3, 9, 3, 0))
    late = parse_policy(BASE.replace('end = "18:00"', 'end = "24:00"'))
    assert late.within_hours(monday.replace(hour=23, minute=59))


# -- secure prompts ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("app_class", "instance", "title"),
    [
        ("Pinentry-gtk-2", "pinentry-gtk-2", "pinentry"),
        ("Gcr-prompter", "gcr-prompter", "Unlock Keyring"),
        ("Polkit-gnome-authentication-agent-1", "polkit-gnome-authentication-agent-1", "x"),
        ("Lxpolkit", "lxpolkit", "x"),
        ("polkit-kde-authentication-agent-1", "x", "x"),
        ("Ssh-askpass", "ssh-askpass", "x"),
        ("KeePassXC", "keepassxc", "Passwords.kdbx - KeePassXC"),
        ("1Password", "1password", "All Items"),
        ("Bitwarden", "bitwarden", "Vault"),
        ("Seahorse", "seahorse", "Passwords and Keys"),
        ("kwalletd5", "kwalletd5", "x"),
        ("VaultApp", "vaultapp", "x"),  # from the policy's [secrets]
        ("Zenity", "zenity", "Password"),
        ("Zenity", "zenity", "Enter your password"),
        ("Zenity", "zenity", "Enter passphrase for key id_rsa"),
        ("Chromium", "chromium", "Sign in - Google Accounts - Chromium"),
        ("firefox", "Navigator", "Log in to GitHub · GitHub — Mozilla Firefox"),
        ("firefox", "Navigator", "Login | Acme CRM"),
        ("Chromium", "chromium", "Acme: Sign In"),
        ("Polkit", "x", "Authentication Required"),
        ("X", "x", "Authenticate"),
        ("Ssh", "x", "OpenSSH Authentication Passphrase request"),
        ("X", "x", "Password for alice@host"),
        ("X", "x", "Enter PIN"),
        ("X", "x", "Passwort - Anmeldung"),
        ("X", "x", "Secret Dialog"),  # from the policy's [secrets] titles, case-insensitive
    ],
)
def test_secret_windows(policy: Policy, app_class: str, instance: str, title: str) -> None:
    assert policy.is_secret_window(app_class, instance, title)


@pytest.mark.parametrize(
    "title",
    [
        "Password policy.docx - LibreOffice Writer",
        "Login page redesign.odt - LibreOffice Writer",
        "Unlocking growth.pptx - LibreOffice Impress",
        "Sign-in statistics.ods - LibreOffice Calc",
        "Pinned tabs - Chromium",
        "xterm",
        "Workbench",
        "Authentication design notes - Mousepad",
        "",
    ],
)
def test_not_secret_windows(policy: Policy, title: str) -> None:
    assert not policy.is_secret_window("Mousepad", "mousepad", title)
    assert not is_secret_title(title)


# -- hotkeys -----------------------------------------------------------------------------------
def test_parse_hotkey() -> None:
    hk = parse_hotkey("Alt+CTRL+P")
    assert str(hk) == "ctrl+alt+p" and hk.keysym == "p" and hk.label() == "Ctrl+Alt+P"
    assert parse_hotkey("super+shift+pause").keysym == "Pause"
    assert str(parse_hotkey("ctrl+escape")) == "ctrl+Escape"
    assert str(parse_hotkey("Control+Win+Prior")) == "ctrl+super+Prior"
    assert str(parse_hotkey("ctrl+alt+f9")) == "ctrl+alt+F9"
    assert str(parse_hotkey("pause")) == "Pause"  # a key that types nothing may stand alone
    for bad in ("p", "shift+p", "ctrl+alt", "hyper+p", "ctrl+ctrl+p", "ctrl++p", "ctrl+alt+pp"):
        with pytest.raises(ValueError):
            parse_hotkey(bad)
    assert parse_policy(BASE.replace("ctrl+alt+p", "Super+Shift+F12")).hotkey == "shift+super+F12"


# -- errors: each names the file, the line and the field ---------------------------------------
def test_unknown_top_level_key() -> None:
    text = BASE.replace('who_sees = "The Acme dataset team."', 'who_sees = "x"\ncolour = "red"')
    msg = error_of(text)
    assert f"policy.toml line {line_of(text, 'colour')}: colour: unknown key" in msg


def test_unknown_key_in_second_app() -> None:
    text = BASE.replace('keystrokes = "keys"', 'keystrokes = "keys"\nkeystroke = "text"')
    msg = error_of(text)
    assert (
        f"policy.toml line {line_of(text, 'keystroke = ')}: apps[2].keystroke: unknown key" in msg
    )
    assert 'did you mean "keystrokes"' in msg


def test_misplaced_top_level_key_explains_tables() -> None:
    text = BASE.replace('browsers = ["chromium", "firefox", "Navigator"]\n', "") + (
        '\n[[sites]]\nname = "Other"\ndomains = ["other.example"]\nbrowsers = ["chromium"]\n'
    )
    msg = error_of(text)
    assert f"line {line_of(text, 'browsers =')}: sites[2].browsers: unknown key" in msg
    assert "top level" in msg


def test_wrong_type() -> None:
    text = BASE.replace("revision = 3", 'revision = "3"')
    msg = error_of(text)
    assert 'policy.toml line 2: revision: must be a whole number, not "3"' in msg
    text = BASE.replace('class = ["XTerm"]', 'class = "XTerm"')
    msg = error_of(text)
    assert f"line {line_of(text, 'class = ', 2)}: apps[2].class: must be a list" in msg
    text = BASE.replace("max_gb = 1.5", "max_gb = true")
    assert f"line {line_of(text, 'max_gb')}: retention.max_gb: must be a number" in error_of(text)


def test_bad_enum() -> None:
    text = BASE.replace('keystrokes = "keys"', 'keystrokes = "maskd"')
    msg = error_of(text)
    expected = (
        f'policy.toml line {line_of(text, "maskd")}: apps[2].keystrokes: "maskd" is not one of '
        "text, masked, keys"
    )
    assert expected in msg
    text = BASE.replace('screenshots = "window"', 'screenshots = "full"')
    assert f"line {line_of(text, 'full')}: defaults.screenshots" in error_of(text)


def test_bad_regex() -> None:
    text = BASE.replace('titles = ["^xterm$"]', 'titles = ["^xterm$", "(unclosed"]')
    msg = error_of(text)
    assert f"line {line_of(text, '(unclosed')}: apps[2].titles[2]:" in msg
    assert "not a valid regular expression" in msg
    text = BASE.replace('titles = ["secret dialog"]', 'titles = ["[x"]')
    assert f"line {line_of(text, '[x')}: secrets.titles[1]:" in error_of(text)


def test_catch_all_site_title_is_refused() -> None:
    text = BASE.replace('titles = ["Acme CRM"]', 'titles = [".*"]')
    msg = error_of(text)
    assert f"line {line_of(text, '.*')}: sites[1].titles[1]:" in msg and "every" in msg


def test_bad_glob() -> None:
    text = BASE.replace('class = ["Workbench"]', 'class = ["Work[bench"]')
    assert f"line {line_of(text, 'Work[bench')}: apps[1].class[1]:" in error_of(text)
    text = BASE.replace('class = ["Workbench"]', 'class = ["*"]')
    assert 'apps[1].class[1]: "*" matches every window' in error_of(text)


def test_app_needs_class_or_process() -> None:
    text = BASE.replace('class = ["Workbench"]\n', "")
    msg = error_of(text)
    assert f"line {line_of(text, '[[apps]]')}: apps[1]: needs class" in msg


def test_bad_time_and_end_before_start() -> None:
    text = BASE.replace('start = "08:00"', 'start = "8am"')
    assert f'line {line_of(text, "8am")}: hours.start: "8am" is not a time' in error_of(text)
    text = BASE.replace('end = "18:00"', 'end = "25:00"')
    assert f"line {line_of(text, '25:00')}: hours.end:" in error_of(text)
    text = BASE.replace('end = "18:00"', 'end = "07:30"')
    msg = error_of(text)
    assert f"line {line_of(text, '07:30')}: hours.end: " in msg and "after start" in msg
    text = BASE.replace('"fri"]', '"fri", "funday"]')
    assert f'line {line_of(text, "funday")}: hours.days[6]: "funday" is not a day' in error_of(text)


def test_bad_hotkey() -> None:
    text = BASE.replace('hotkey = "ctrl+alt+p"', 'hotkey = "ctrl+hyper+p"')
    msg = error_of(text)
    assert f'line {line_of(text, "hyper")}: controls.hotkey: "ctrl+hyper+p" is not a hotkey' in msg
    text = BASE.replace('hotkey = "ctrl+alt+p"', 'hotkey = "p"')
    assert "controls.hotkey" in error_of(text)


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("https://crm.acme.example", "without a scheme"),
        ("crm.acme.example/login", "without a path"),
        ("crm.acme.example:8080", "without a port"),
        ("crm.*.example", "* only as the whole first label"),
        ("*", "* only as the whole first label"),
        ("*.example", "too broad"),
        ("crm..example", "not a valid host name"),
        ("-crm.example", "not a valid host name"),
    ],
)
def test_bad_domain_pattern(domain: str, reason: str) -> None:
    text = BASE.replace('"crm.acme.example", ', f'"{domain}", ')
    msg = error_of(text)
    assert f"line {line_of(text, 'domains =')}: sites[1].domains[1]:" in msg
    assert reason in msg


def test_format_2_needs_newer_demotrace() -> None:
    text = BASE.replace("format = 1", "format = 2") + "\n[future]\nthing = 1\n"
    msg = error_of(text)
    assert msg.startswith("policy.toml line 1: format:")
    assert "newer demotrace" in msg
    assert "future" not in msg  # only the format is reported


def test_missing_required_fields() -> None:
    text = BASE.replace('contact = "privacy@acme.example"\n', "").replace("format = 1\n", "")
    assert "format: is missing" in error_of(text)
    text = BASE.replace('contact = "privacy@acme.example"\n', "")
    assert "line 1: contact: is missing" in error_of(text)
    text = BASE.replace('name = "Terminal"\n', "")
    assert f"line {line_of(text, '[[apps]]', 2)}: apps[2].name: is missing" in error_of(text)


def test_several_errors_in_one_paragraph() -> None:
    text = (
        BASE.replace("revision = 3", "revision = 0")
        .replace('keystrokes = "keys"', 'keystrokes = "maskd"')
        .replace("days = 14", "days = 0")
    )
    msg = error_of(text)
    assert msg.startswith("The policy policy.toml has 3 problems: ")
    assert (
        msg.index("line 2: revision")
        < msg.index("apps[2].keystrokes")
        < msg.index("retention.days")
    )
    many = BASE + "".join(
        f"\n[[apps]]\nname = 'a{i}'\ncolor{i} = 1\nclass = ['a']\n" for i in range(9)
    )
    assert "and 4 more" in error_of(many)


def test_toml_syntax_error_names_its_line() -> None:
    text = BASE.replace('name = "Workbench"', 'name = "Workbench')
    msg = error_of(text)
    assert msg.startswith(f"policy.toml line {line_of(text, 'Workbench')}: this is not valid TOML")


def test_locator_skips_multiline_strings_and_arrays() -> None:
    text = BASE.replace(
        'purpose = "Learn how support tickets are handled."',
        'purpose = """Learn.\n[[apps]]\nkeystrokes = "maskd"\n"""',
    ).replace('keystrokes = "keys"', 'keystrokes = "maskd"')
    assert f"line {line_of(text, 'maskd', 2)}: apps[2].keystrokes" in error_of(text)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.toml")
    with pytest.raises(PolicyError, match="is a folder"):
        load_policy(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'format = 1\nname = "caf\xe9"\n')
    with pytest.raises(PolicyError, match="line 2: the policy file is not UTF-8"):
        load_policy(bad)
    good = tmp_path / "policy.toml"
    good.write_text(BASE.replace("max_gb = 1.5", "max_gb = 0"), encoding="utf-8")
    with pytest.raises(PolicyError, match=re.escape(f"{good} line {line_of(BASE, 'max_gb')}:")):
        load_policy(good)
    good.write_text(BASE, encoding="utf-8")
    assert load_policy(str(good)).source == str(good)


# -- the notice --------------------------------------------------------------------------------
def test_notice_from_policy(policy: Policy) -> None:
    text = render_notice(policy)
    lines = text.splitlines()
    assert 50 <= len(lines) <= 110
    assert max(len(line) for line in lines) <= 88
    for needle in (
        "Workbench",
        "Terminal",
        "LibreOffice",
        "Acme CRM (crm.acme.example, *.tickets.acme.example)",
        "Acme GmbH",
        "privacy@acme.example",
        "Learn how support tickets are handled.",
        "The Acme dataset team.",
        "Ctrl+Alt+P",
        "14 days",
        "1.5 GB",
        "12 hours",
        "Monday to Friday, 08:00 to 18:00",
        "demotrace pause --for 15m",
        "demotrace forget --last 10m",
        "demotrace consent --withdraw",
        "demotrace consent --accept",
        "demotrace sessions",
        "gap marker",
        "blacked out",
    ):
        assert needle in text, needle
    flat = " ".join(text.split())
    assert policy.version in flat
    assert "only shortcuts and special keys kept" in flat  # the Terminal's "keys" mode in words
    assert "typing kept masked" in flat  # the CRM's "masked" mode in words
    assert 'mode is "masked": the shape of what you type is kept, not its content' in flat
    assert 'mode is "keys": only shortcuts and special keys' in flat


def test_notice_dict_matches_the_text(policy: Policy) -> None:
    data = notice_dict(policy)
    json.dumps(data)
    assert data["policy"]["version"] == policy.version
    ids = [s["id"] for s in data["sections"]]
    assert ids == ["who", "what", "where", "never", "control", "keep", "rights", "consent"]
    where = data["sections"][ids.index("where")]
    assert [r["name"] for r in where["rules"]] == [
        "Workbench",
        "Terminal",
        "LibreOffice",
        "Acme CRM",
    ]


def test_notice_for_shipped_policies_and_empty_allowlist() -> None:
    for p in (load_policy(), load_policy(demo_policy_path())):
        lines = render_notice(p).splitlines()
        assert 60 <= len(lines) <= 110 and max(map(len, lines)) <= 88
    empty = parse_policy(BASE.split("[hours]")[0])
    assert "nothing is recorded" in " ".join(render_notice(empty).split())
