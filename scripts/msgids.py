"""List the gettext msgids used in our templates and Python code (for keeping the catalogs complete)."""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "kokyaku"
PATTERNS = [
    re.compile(r'_\(\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r"_\(\s*'((?:[^'\\]|\\.)+)'"),
    re.compile(r'gettext\(\s*\w+,\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r'^\s+message = "([A-Z{](?:[^"\\]|\\.)+)"', re.M),
    re.compile(
        r'(?:ValueError|NormalizationError|Conflict|NotFound|NotAuthenticated|KokyakuError)\(\s*"((?:[^"\\]|\\.)+)"'
    ),
    re.compile(r'\(\s*"[\w.]+",\s*"((?:[^"\\]|\\.)+)",\s*\{'),
    re.compile(r'^\s+"\w+": "((?:[^"\\]|\\.)+\.)",$', re.M),
]


def msgids(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            found.update(
                m.encode().decode("unicode_escape") if "\\" in m else m for m in pattern.findall(text)
            )
    return found


def source_files(folders: list[str] | None = None) -> list[Path]:
    roots = [SRC / f for f in folders] if folders else [SRC]
    return [p for root in roots for p in root.rglob("*") if p.suffix in (".py", ".html")]


if __name__ == "__main__":
    for m in sorted(msgids(source_files(sys.argv[1:] or None))):
        print(m)
