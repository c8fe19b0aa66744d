"""Run every benchmark; results go to bench/out/*.json (BENCHMARKS.md quotes them).

python bench/run.py            # storm (3 rounds) + 10-minute workload + privacy + redactor
                               # + reducer + build + collector ingest (with a py-spy profile)
                               # + web pages on 10,000 steps + the browser extension's handlers
python bench/run.py --quick    # storm (1 round) + 2-minute workload + privacy + redactor
                               # + reducer + build + collector ingest (a quarter of the uploads)
                               # + web pages (3 rounds) + the extension's handlers
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats, minutes = ("1", "2") if args.quick else ("3", "10")
    subprocess.run([sys.executable, HERE / "storm.py", "--repeats", repeats], check=True)
    subprocess.run([sys.executable, HERE / "workload.py", "--minutes", minutes], check=True)
    subprocess.run([sys.executable, HERE / "privacy.py"], check=True)
    subprocess.run([sys.executable, HERE / "redact_fp.py"], check=True)
    hours = "1" if args.quick else "8"
    subprocess.run([sys.executable, HERE / "reduce.py", "--hours", hours], check=True)
    subprocess.run([sys.executable, HERE / "build_bench.py"], check=True)
    ingest = ["--quick"] if args.quick else ["--profile"]
    subprocess.run([sys.executable, HERE / "ingest.py", *ingest], check=True)
    rounds = ["--rounds", "3"] if args.quick else []
    subprocess.run([sys.executable, HERE / "web.py", *rounds], check=True)
    subprocess.run([sys.executable, HERE / "extension.py"], check=True)


if __name__ == "__main__":
    main()
