"""Where every benchmark saves its table, and how each script's main() is run."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def save_results(text: str, name: str, out_dir: Path, label: str | None = None) -> list[Path]:
    """Write `{name}-{stamp}[-label].md`, `{name}-latest.md` and, with a label, `{name}-{label}-latest.md`;
    say on stderr where each went."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}" if label else ""
    paths = [out_dir / f"{name}-{stamp}{suffix}.md", out_dir / f"{name}-latest.md"]
    if suffix:
        paths.append(out_dir / f"{name}{suffix}-latest.md")
    for path in paths:
        path.write_text(text)
        print(f"saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", file=sys.stderr)
    return paths


def run_main(main: Callable[[], int]) -> None:
    """Exit with main()'s status; Ctrl-C (the child processes are stopped by then) exits 130."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        sys.exit(130)
