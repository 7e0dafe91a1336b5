"""Make `plugin` (top-level, not installed with the `renderer` package) and the shared test media
factory importable for the plugin tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
