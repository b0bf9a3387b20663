"""The segment builder's form: the rule tree as form fields named by path, the edit actions (add, remove,
change field or operator), and problems mapped to the condition they belong to.

Paths: the root group is "", its children "0", "1", ..., a nested child "1.0". Field names:
`g:<path>:op` for a group's and/or (with a `g:<path>` marker), and `c:<path>:field|operator|value|value0|
value1|days` for a condition. A list value is several `c:<path>:value` fields (a multiple select) or one
comma-separated text.
"""

import re
from typing import Any

from starlette.datastructures import FormData

from kokyaku.segments import rules as R

Node = dict[str, Any]
_SPLIT = re.compile(r"[,、\n]")


def new_condition(field: str = "prefecture") -> Node:
    spec = R.FIELDS.get(field)
    operator = spec.allowed_operators()[0] if spec else ""
    return {"type": "cond", "field": field, "operator": operator, "value": None, "days": None}


def empty_tree() -> Node:
    return _number({"type": "group", "op": "and", "children": [new_condition()]}, "")


def tree_from_rules(raw: Any) -> Node:
    """Stored JSON (or anything) -> the editable tree, tolerant of bad input."""

    def node(item: Any, depth: int) -> Node:
        if isinstance(item, dict) and "field" not in item and depth <= R.MAX_DEPTH + 1:
            found = item.get("conditions")
            children: list[Any] = found if isinstance(found, list) else []
            op = item.get("op") if item.get("op") in ("and", "or") else "and"
            return {"type": "group", "op": op, "children": [node(c, depth + 1) for c in children[:60]]}
        item = item if isinstance(item, dict) else {}
        return {
            "type": "cond",
            "field": str(item.get("field") or ""),
            "operator": str(item.get("operator") or ""),
            "value": item.get("value"),
            "days": item.get("days"),
        }

    tree = node(raw, 1)
    if tree["type"] != "group":
        tree = {"type": "group", "op": "and", "children": [tree]}
    return _number(tree, "")


def _number(node: Node, path: str) -> Node:
    node["path"] = path
    if node["type"] == "group":
        for i, child in enumerate(node["children"]):
            _number(child, f"{path}.{i}" if path else str(i))
    return node


def tree_from_form(form: FormData, ctx: R.Context) -> Node:
    """The posted builder fields -> the tree (values still text, as typed)."""
    groups: dict[str, str] = {"": "and"}
    conds: dict[str, Node] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str) or key[:2] not in ("g:", "c:"):
            continue
        parts = key.split(":")
        if len(parts) < 2 or len(parts) > 3 or not re.fullmatch(r"(\d{1,3}(\.\d{1,3}){0,6})?", parts[1]):
            continue
        path = parts[1]
        if parts[0] == "g":
            if len(parts) == 3 and parts[2] == "op":
                groups[path] = value if value in ("and", "or") else "and"
            else:
                groups.setdefault(path, "and")
        elif path and len(parts) == 3:
            cond = conds.setdefault(
                path, {"type": "cond", "field": "", "operator": "", "values": [], "days": None}
            )
            attr = parts[2]
            if attr in ("field", "operator"):
                cond[attr] = value.strip()
            elif attr == "value":
                cond["values"].append(value)
            elif attr in ("value0", "value1"):
                cond[attr] = value
            elif attr == "days":
                cond["days"] = value.strip() or None
    for cond in conds.values():
        cond["value"] = _value_of(cond, ctx)
    return _assemble(groups, conds)


def _value_of(cond: Node, ctx: R.Context) -> Any:
    spec = R.resolve_field(cond["field"], ctx)
    op = cond["operator"]
    values = [v for v in cond.pop("values") if v.strip()]
    low, high = cond.pop("value0", None), cond.pop("value1", None)
    if op in R.NO_VALUE:
        return None
    if op in R.RANGE_OPS:
        return [low or None, high or None] if (low or high) else None
    if op in R.LIST_OPS:
        if spec is not None and spec.choices is None and len(values) <= 1:
            return [p.strip() for p in _SPLIT.split(values[0]) if p.strip()] if values else []
        return values
    return values[0].strip() if values else None


def _assemble(groups: dict[str, str], conds: dict[str, Node]) -> Node:
    def key(path: str) -> tuple[int, ...]:
        return tuple(int(p) for p in path.split(".")) if path else ()

    def build(path: str) -> Node:
        depth = len(key(path))
        kids = [
            p for p in [*groups, *conds] if p and len(key(p)) == depth + 1 and key(p)[:depth] == key(path)
        ]
        children = [build(p) if p in groups else conds[p] for p in sorted(set(kids), key=key)]
        return {"type": "group", "op": groups.get(path, "and"), "children": children}

    return _number(build(""), "")


def rules_from_tree(tree: Node) -> dict[str, Any]:
    """The tree -> rule JSON for the validator (which coerces the typed text)."""

    def node(n: Node) -> dict[str, Any]:
        if n["type"] == "group":
            return {"op": n["op"], "conditions": [node(c) for c in n["children"]]}
        out: dict[str, Any] = {"field": n["field"], "operator": n["operator"]}
        if n["operator"] not in R.NO_VALUE:
            out["value"] = n["value"]
        if n.get("days") not in (None, ""):
            out["days"] = n["days"]
        return out

    return node(tree)


def _find(tree: Node, path: str) -> tuple[Node | None, Node | None, int]:
    """(parent group, node, index in parent) of the node at `path`."""
    parent, node, index = None, tree, -1
    for part in path.split(".") if path else []:
        if (
            node is None
            or node["type"] != "group"
            or not part.isdigit()
            or int(part) >= len(node["children"])
        ):
            return None, None, -1
        parent, index = node, int(part)
        node = node["children"][index]
    return parent, node, index


def apply(tree: Node, action: str, ctx: R.Context) -> Node:
    """Apply one builder action: add-condition:<group>, add-group:<group>, remove:<node>, field:<cond>,
    operator:<cond>. Unknown actions and paths change nothing."""
    verb, _, path = action.partition(":")
    parent, node, index = _find(tree, path)
    if node is None:
        return tree
    if verb == "add-condition" and node["type"] == "group":
        node["children"].append(new_condition())
    elif verb == "add-group" and node["type"] == "group" and path.count(".") + 2 < R.MAX_DEPTH:
        node["children"].append({"type": "group", "op": "or", "children": [new_condition()]})
    elif verb == "remove" and parent is not None:
        del parent["children"][index]
    elif verb == "field" and node["type"] == "cond":
        spec = R.resolve_field(node["field"], ctx)
        node["operator"] = spec.allowed_operators()[0] if spec else ""
        node["value"], node["days"] = None, None
    elif verb == "operator" and node["type"] == "cond":
        shape = (
            "range"
            if node["operator"] in R.RANGE_OPS
            else "list"
            if node["operator"] in R.LIST_OPS
            else "one"
        )
        value = node["value"]
        if (shape == "range") != (
            isinstance(value, list) and len(value) == 2 and node["operator"] in R.RANGE_OPS
        ):
            node["value"] = None
        if shape == "list" and value is not None and not isinstance(value, list):
            node["value"] = [value]
        if shape == "one" and isinstance(value, list):
            node["value"] = value[0] if value else None
    return _number(tree, "")


def slot(path: str, attr: str = "") -> str:
    """The id of the element that shows a problem of the node at `path` (and its attribute)."""
    base = "err-" + (path.replace(".", "-") if path else "root")
    return f"{base}-{attr}" if attr else base


def problem_slots(problems: list[tuple[str, str, dict[str, Any]]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Validator paths (conditions.1.conditions.0.value.1) -> builder slots (err-1-0-value)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for field, message, params in problems:
        parts = field.split(".") if field not in ("rules", "") else []
        path: list[str] = []
        attr = ""
        i = 0
        while i < len(parts):
            if parts[i] == "conditions" and i + 1 < len(parts) and parts[i + 1].isdigit():
                path.append(parts[i + 1])
                i += 2
                continue
            attr = parts[i] if parts[i] in ("field", "operator", "value", "days", "op", "conditions") else ""
            break
        if attr == "conditions":
            attr = ""
        out.setdefault(slot(".".join(path), attr), (message, params))
    return out


def all_slots(tree: Node) -> list[str]:
    """Every problem slot the tree has, so that a recount can clear the ones that are fine now."""
    out = [slot("")]

    def walk(node: Node) -> None:
        out.append(slot(node["path"]))
        if node["type"] == "group":
            out.append(slot(node["path"], "op"))
            for child in node["children"]:
                walk(child)
        else:
            out.extend(slot(node["path"], a) for a in ("field", "operator", "value", "days"))

    for child in tree["children"]:
        walk(child)
    out.append(slot("", "op"))
    return list(dict.fromkeys(out))
