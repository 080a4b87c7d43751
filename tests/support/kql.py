"""The alert rules' and the workbook's KQL (infra/queries/*.kql), read as deployed, and a
small evaluator of the parts that can be run in Python over records our code wrote.

What is evaluated: ``where Message startswith '...'``, ``extend d = parse_json(Message)``,
``summarize arg_max(TimeGenerated, Message)`` (the latest record), ``mv-expand c = d.x``,
and ``where`` / ``countif`` predicates of the form ``[toint|tostring|todouble](d.f) OP v``
(``== != > >= < <=``, ``in (...)``, ``between (a .. b)``, joined by ``and``). Evaluation
stops at the first other ``summarize``: what a rule then counts is computed by the test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
FIELD_REF = re.compile(r"\b([dc])\.([A-Za-z_]\w*)")
PREFIX = re.compile(r"""Message startswith '\{"record":"(\w+)"'""")


def _text(node: Any, resolve) -> str:
    """The text of a parsed query expression: loadTextContent, replace and string()."""
    if isinstance(node, str):
        return node
    fn = node["function"]
    args = fn["parameters"]
    if fn["type"] == "load_text_content":
        return (INFRA / "modules" / args["file_path"]).resolve().read_text()
    if fn["type"] == "replace":
        return _text(args["original_string"], resolve).replace(
            args["old_string"], _text(args["new_string"], resolve))
    if fn["type"] == "string":
        return str(resolve(args["value_to_convert"]))
    raise AssertionError(f"unexpected function in a query: {fn['type']}")


def _main_defaults() -> dict[str, Any]:
    """The alerts module's parameters as main.bicep passes them, at main's defaults."""
    main = BicepParser().parse(file_path=INFRA / "main.bicep")
    passed = main["modules"]["alerts"]["config"]["params"]
    return {name: main["parameters"][value]["default"] for name, value in passed.items()
            if isinstance(value, str) and value in main["parameters"]}


def alert_rules() -> dict[str, dict]:
    """name -> {"query": text at the defaults, "severity", "frequency", "window"}."""
    alerts = BicepParser().parse(file_path=INFRA / "modules" / "alerts.bicep")
    defaults = _main_defaults()
    rules = {}
    for rule in alerts["variables"]["rules"]["value"]:
        rules[rule["name"]] = {**rule, "query": _text(rule["query"], defaults.__getitem__)}
    return rules


def workbook_queries() -> dict[str, str]:
    workbook = BicepParser().parse(file_path=INFRA / "modules" / "workbook.bicep")
    return {s["title"]: _text(s["query"], lambda _: None)
            for s in workbook["variables"]["sections"]["value"]}


def record_type(query: str) -> str:
    (found,) = set(PREFIX.findall(query))
    return found


def fields(query: str) -> dict[str, set[str]]:
    """Fields the query reads: ``{"d": {...}, "c": {...}}`` (record, credential line)."""
    found: dict[str, set[str]] = {"d": set(), "c": set()}
    for var, name in FIELD_REF.findall(_code(query)):
        found[var].add(name)
    return found


def _code(query: str) -> str:
    return "\n".join(line for line in query.splitlines() if not line.lstrip().startswith("//"))


def stages(query: str) -> list[str]:
    return [s.strip() for s in re.split(r"\n\s*\|", _code(query)) if s.strip()][1:]


@dataclass
class Row:
    message: str
    d: Any = None
    c: Any = None


_PRED = re.compile(
    r"^(?:(toint|tostring|todouble)\()?([dc])\.(\w+)\)?\s*"
    r"(==|!=|>=|<=|>|<|in|between)\s*(.+)$")


def _value(text: str) -> Any:
    text = text.strip()
    if text.startswith("'"):
        return text.strip("'")
    return float(text)


def _convert(cast: str | None, value: Any) -> Any:
    if value is None:
        return None
    if cast == "toint":
        return int(value) if isinstance(value, int | float) or str(value).isdigit() else None
    if cast == "todouble":
        return float(value)
    if cast == "tostring":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return value


@dataclass(frozen=True)
class _Comparison:
    cast: str | None
    var: str
    name: str
    op: str
    operand: str

    def __call__(self, row: Row) -> bool:
        source = getattr(row, self.var)
        value = _convert(self.cast, source.get(self.name) if isinstance(source, dict) else None)
        if value is None:
            return False
        if self.op == "in":
            return value in {_value(v) for v in self.operand.strip("() ").split(",")}
        if self.op == "between":
            low, high = (float(v) for v in self.operand.strip("() ").split(".."))
            return low <= value <= high
        wanted = _value(self.operand)
        return {"==": value == wanted, "!=": value != wanted, ">": value > wanted,
                ">=": value >= wanted, "<": value < wanted, "<=": value <= wanted}[self.op]


def predicate(text: str):
    """A Python function of a Row for one KQL predicate (``a and b`` allowed)."""
    tests = []
    for part in (p.strip() for p in re.split(r"\band\b", text)):
        match = _PRED.match(part)
        assert match, f"not an evaluable predicate: {part!r}"
        tests.append(_Comparison(*match.groups()))
    return lambda row: all(t(row) for t in tests)


def run(query: str, messages: list[str]) -> list[Row]:
    """The rows that reach the query's first aggregation (or its end)."""
    rows = [Row(m) for m in messages]
    for stage in stages(query):
        verb, _, rest = stage.partition(" ")
        if stage.startswith("where Message startswith "):
            prefix = stage.split("startswith ", 1)[1].strip().strip("'")
            rows = [r for r in rows if r.message.startswith(prefix)]
        elif stage.startswith("where TimeGenerated"):
            continue  # every captured record is recent
        elif stage == "summarize arg_max(TimeGenerated, Message)":
            rows = rows[-1:]
        elif stage == "extend d = parse_json(Message)":
            for r in rows:
                r.d = json.loads(r.message)
        elif verb == "mv-expand":
            var, _, source = rest.partition("=")
            assert var.strip() == "c" and source.strip().startswith("d.")
            name = source.strip()[2:]
            rows = [Row(r.message, r.d, item) for r in rows for item in r.d.get(name) or []]
        elif verb == "where":
            keep = predicate(rest)
            rows = [r for r in rows if keep(r)]
        elif verb == "summarize":
            break
    return rows


def countif(query: str):
    """The predicate inside the query's ``countif(...)``."""
    code = _code(query)
    start = code.index("countif(") + len("countif(")
    depth, end = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(code[end], 0)
        end += 1
    return predicate(code[start:end - 1])
