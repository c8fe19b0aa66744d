"""Redactor benchmark: false positives on ordinary work text, recall on typed secrets, speed.

    .venv/bin/python bench/redact_fp.py            # 1,000 secrets per kind
    .venv/bin/python bench/redact_fp.py --n 200    # quicker

False positives: every line of ``bench/corpus/work_text.txt`` that ``redact()`` changes (the
corpus holds no secrets and no personal data), by part of the corpus, in the order the parts
were written: the rules were tuned on ``calibration``, then on ``held-out A`` and ``held-out B``
after a first measurement of each; ``held-out C`` was written after the last rule change and
has not been tuned on (first measurements in BENCHMARKS.md).

Recall: N generated secrets of each kind (``bench/secret_gen.py``) inside work-like text, typed
with typos corrected by BackSpace and rebuilt with ``apply_edits``; a secret is caught when it no
longer occurs in ``redact()``'s output and a placeholder of an accepted kind does ("hidden" counts
the first condition alone).

Speed: ``redact()`` on 200-character strings (half of them holding a secret) beside one
``str.translate`` and one trivial regex search over the same strings, in the same run.

Prints a table and writes ``bench/out/redact.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from demotrace.privacy.keys import apply_edits
from demotrace.privacy.redact import find_secrets, redact

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import secret_gen  # noqa: E402  (bench/ is not a package)

CORPUS = HERE / "corpus" / "work_text.txt"
OUT = HERE / "out" / "redact.json"
#: Parts of the corpus, by 1-based line range, in the order they were written.
PARTS = (
    ("calibration", 1, 370),
    ("held-out A", 371, 553),
    ("held-out B", 554, 617),
    ("held-out C", 618, 10**9),
)


def false_positives() -> dict[str, object]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    by_kind: Counter[str] = Counter()
    changed: list[dict[str, object]] = []
    parts = {name: {"lines": 0, "changed": 0} for name, _, _ in PARTS}
    for number, line in enumerate(lines, 1):
        part = next(name for name, first, last in PARTS if first <= number <= last)
        parts[part]["lines"] += 1
        found = find_secrets(line)
        if not found:
            continue
        parts[part]["changed"] += 1
        by_kind.update(f.kind for f in found)
        changed.append(
            {
                "line": number,
                "part": part,
                "findings": [[f.kind, line[f.start : f.end]] for f in found],
            }
        )
    return {
        "lines": len(lines),
        "changed": len(changed),
        "rate": len(changed) / len(lines),
        "by_kind": dict(by_kind),
        "parts": parts,
        "changed_lines": changed,
    }


def _caught(kind: str, secret: str, out: str, accepted: frozenset[str]) -> tuple[bool, bool]:
    leaked = secret in out
    if kind in ("CARD", "IBAN", "PHONE"):
        leaked = leaked or "".join(c for c in secret if c.isdigit()) in re.sub(r"\D", "", out)
    labelled = any(f"<{k}>" in out for k in accepted)
    return not leaked, labelled


def recall(n: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    result: dict[str, object] = {}

    def measure(kind: str, gen: Callable[[random.Random], str], accepted: frozenset[str]) -> dict:
        hidden = labelled = 0
        misses: list[str] = []
        for _ in range(n):
            secret = gen(rng)
            text = secret_gen.embed(rng, secret)
            typed = apply_edits(secret_gen.type_with_corrections(rng, text))
            assert typed == text
            ok_hidden, ok_label = _caught(kind, secret, redact(typed), accepted)
            hidden += ok_hidden
            labelled += ok_hidden and ok_label
            if not ok_hidden and len(misses) < 5:
                misses.append(secret)
        return {"n": n, "hidden": hidden / n, "recall": labelled / n, "missed": misses}

    for kind, (gen, accepted) in secret_gen.GENERATORS.items():
        result[kind] = measure(kind, gen, accepted)
    _, accepted = secret_gen.GENERATORS["SECRET"]
    families = {
        f"SECRET/{name}": measure("SECRET", fn, accepted)
        for name, fn in secret_gen.PASSWORD_FAMILIES.items()
    }
    result.update(families)
    return result


def _strings(rng: random.Random, count: int) -> list[str]:
    """200-character strings of work text; every other one holds a generated secret."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    kinds = list(secret_gen.GENERATORS)
    out = []
    for i in range(count):
        text = " ".join(rng.sample(lines, 4))
        if i % 2:
            gen, _ = secret_gen.GENERATORS[kinds[(i // 2) % len(kinds)]]
            secret = gen(rng).replace("\n", " ")[:120]
            cut = rng.randrange(0, 200 - len(secret))
            text = text[:cut] + " " + secret + " " + text[cut:]
        out.append(text[:200].ljust(200))
    return out


def speed(seed: int, count: int = 2000, repeats: int = 7) -> dict[str, object]:
    strings = _strings(random.Random(seed), count)
    table = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    trivial = re.compile(r"\d{4}")
    candidates: dict[str, Callable[[str], object]] = {
        "redact": redact,
        "baseline: str.translate": lambda s: s.translate(table),
        "baseline: one regex search": trivial.search,
    }
    result: dict[str, object] = {}
    for name, fn in candidates.items():
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for s in strings:
                fn(s)
            runs.append((time.perf_counter() - t0) / len(strings) * 1e6)
        result[name] = {
            "us_per_call_best": min(runs),
            "us_per_call_median": statistics.median(runs),
        }
    per_call = [0.0] * len(strings)
    for _ in range(3):
        for i, s in enumerate(strings):
            t0 = time.perf_counter()
            redact(s)
            dt = (time.perf_counter() - t0) * 1e6
            per_call[i] = dt if per_call[i] == 0.0 else min(per_call[i], dt)
    per_call.sort()
    result["redact_p99_us"] = per_call[int(0.99 * len(per_call))]
    result["redact_max_us"] = per_call[-1]
    result["strings"] = count
    result["chars"] = 200
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=1000, help="generated secrets per kind")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    fp = false_positives()
    rec = recall(args.n, args.seed)
    spd = speed(args.seed)

    print(f"False positives on {CORPUS.relative_to(HERE.parent)}")
    print(f"  {'part':<14}{'lines':>7}{'changed':>9}{'rate':>8}")
    for name, part in fp["parts"].items():  # type: ignore[union-attr]
        rate = part["changed"] / part["lines"] if part["lines"] else 0.0
        print(f"  {name:<14}{part['lines']:>7}{part['changed']:>9}{rate:>8.1%}")
    print(f"  {'all':<14}{fp['lines']:>7}{fp['changed']:>9}{fp['rate']:>8.1%}")
    print(f"  findings by kind: {fp['by_kind']}")
    for c in fp["changed_lines"]:  # type: ignore[union-attr]
        print(f"    line {c['line']}: {c['findings']}")
    print(f"\nRecall on typed secrets ({args.n} per kind, typos corrected with BackSpace)")
    print(f"  {'kind':<20}{'hidden':>9}{'recall':>9}  missed (first few)")
    for kind, r in rec.items():
        missed = ", ".join(r["missed"])[:60]  # type: ignore[index]
        print(f"  {kind:<20}{r['hidden']:>9.2%}{r['recall']:>9.2%}  {missed}")  # type: ignore[index]
    print(f"\nSpeed, {spd['strings']} strings of {spd['chars']} characters (best of 7 runs)")
    for name in ("redact", "baseline: str.translate", "baseline: one regex search"):
        row = spd[name]
        print(f"  {name:<28}{row['us_per_call_best']:>8.1f} µs/call")  # type: ignore[index]
    print(f"  redact p99 {spd['redact_p99_us']:.0f} µs, max {spd['redact_max_us']:.0f} µs")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "false_positives": fp,
        "recall": rec,
        "speed": spd,
    }
    OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {OUT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
