"""Every user-visible string of the segments domain has a Japanese translation."""

import ast
import re
from pathlib import Path

from babel.messages.pofile import read_po

import kokyaku
from kokyaku.segments import fields as builtin_fields
from kokyaku.segments import labels, lifecycle, rfm
from kokyaku.segments import rules as R
from kokyaku.web import segments as pages

SRC = Path(kokyaku.__file__).parent
LOCALE = SRC / "locale" / "ja" / "LC_MESSAGES"


def _japanese() -> dict[str, str]:
    """messages.po plus the parts not merged into it yet."""
    out: dict[str, str] = {}
    for path in [LOCALE / "messages.po", *sorted(LOCALE.glob("*.po.part"))]:
        if path.exists():
            with path.open("rb") as fh:
                out.update({m.id: m.string for m in read_po(fh, locale="ja") if m.id and m.string})
    return out


def _msgids() -> set[str]:
    ids: set[str] = set()
    for template in (SRC / "web" / "templates" / "segments").glob("*.html"):
        for match in re.finditer(r'_\(\s*"((?:[^"\\]|\\.)*)"', template.read_text()):
            ids.add(match.group(1).replace('\\"', '"'))
    ids |= set(R.OPERATORS.values()) | {spec.label for spec in builtin_fields._FIELDS}
    ids |= {text for pair in [*rfm.SEGMENT_INFO.values(), *lifecycle.STAGE_INFO.values()] for text in pair}
    ids |= (
        set(labels.CHANNEL_LABELS.values())
        | set(pages.BREAKDOWN_LABELS.values())
        | {c for _, c in pages.CATEGORIES}
    )
    # the validator's problems: every message passed to _Parser.problem()
    tree = ast.parse((SRC / "segments" / "rules.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "problem"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
        ):
            ids.add(node.args[1].value)
    return ids


def test_every_string_has_a_japanese_translation() -> None:
    japanese = _japanese()
    assert sorted(m for m in _msgids() if m not in japanese) == []


def test_placeholders_survive_translation() -> None:
    japanese = _japanese()
    for msgid in _msgids():
        wanted = set(re.findall(r"\{(\w+)\}", msgid))
        assert set(re.findall(r"\{(\w+)\}", japanese.get(msgid, msgid))) == wanted, msgid
