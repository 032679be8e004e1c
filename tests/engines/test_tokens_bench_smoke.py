"""Smoke test of bench/local_tokens_bench.py: a `--quick` run on the tiny model gives a well-formed table.

Checks the shape of what the benchmark prints and saves, not the speed (a tiny model measures overhead only).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "local_tokens_bench.py"


def _section(text: str, title: str) -> list[list[str]]:
    """The data rows (cells) of the markdown table under the heading that starts with `title`."""
    lines = text.split(f"## {title}", 1)[1].splitlines()
    end = next((i for i, line in enumerate(lines[1:]) if line.startswith("## ")), len(lines))
    rows = [line for line in lines[1 : end + 1] if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # past header and rule


@pytest.mark.slow
def test_quick_run_prints_and_saves_the_table(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--save", "--out-dir", str(tmp_path), "--cpus", "none"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    text = out.stdout
    assert text.startswith("# modelgate local-engine tokens/s benchmark\n")
    for key in ("cpu", "cores", "commit", "model", "dtype / device / torch threads", "load average before",
                "load average after", "pinning", "request"):  # fmt: skip
        assert re.search(rf"^- {re.escape(key)}: .+$", text, re.MULTILINE), key
    assert "max_tokens 16" in text

    medians = _section(text, "Medians of 1 round(s)")
    assert [(r[0], r[1]) for r in medians] == [
        ("generate() loop", "1"), ("modelgate", "1"), ("generate() loop", "8"), ("modelgate", "8"),
    ]  # fmt: skip
    for row in medians:
        assert len(row) == 7
        tokens_per_s, ttft_min, ttft_p50, ttft_max = (float(x) for x in row[2:6])
        assert tokens_per_s > 0 and 0 < ttft_min <= ttft_p50 <= ttft_max
        assert row[6] == "n/a" or float(row[6]) > 0  # CPU ms/token (n/a off Linux)

    targets = {row[0]: row for row in _section(text, "The issue's targets")}
    single = targets["modelgate single stream / generate() loop single stream"]
    scaling = targets["modelgate 8 concurrent / modelgate single stream"]
    assert (single[2], scaling[2]) == ("≥ 0.9", "≥ 3.0")
    assert single[3] in ("PASS", "FAIL") and scaling[3] in ("PASS", "FAIL")
    assert float(single[1]) > 0 and float(scaling[1]) > 0

    every = _section(text, "Every round")
    assert len(every) == 4 and {r[0] for r in every} == {"1"}

    saved = sorted(p.name for p in tmp_path.iterdir())
    assert len(saved) == 2 and "local-tokens-latest.md" in saved
    assert re.fullmatch(r"local-tokens-\d{8}T\d{6}Z\.md", next(n for n in saved if n != "local-tokens-latest.md"))
    assert (tmp_path / "local-tokens-latest.md").read_text() == text.rstrip("\n") + "\n"
