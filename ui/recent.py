"""Recently opened graphs: a small JSON list at ~/.config/nodegraph/recent.json
($NODEGRAPH_RECENT overrides the path, which tests use)."""

from __future__ import annotations

import json
import os
from pathlib import Path

LIMIT = 12


def recent_path() -> Path:
    env = os.environ.get("NODEGRAPH_RECENT")
    return Path(env).expanduser() if env else Path("~/.config/nodegraph/recent.json").expanduser()


def load_recent() -> list[Path]:
    try:
        data = json.loads(recent_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Path(p) for p in data if isinstance(p, str)]


def remember(path: Path) -> None:
    """Put `path` first in the list; failures to write are ignored (a read-only home)."""
    entry = str(Path(path).resolve())
    items = [entry] + [str(p) for p in load_recent() if str(p) != entry]
    target = recent_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(items[:LIMIT], indent=2) + "\n", encoding="utf-8")
    except OSError:
        pass
