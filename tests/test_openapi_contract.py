"""openapi.yaml and function_app.py declare the same HTTP routes and methods."""

import json
import re
from pathlib import Path

import yaml

from tests.support.functions import functions

ROOT = Path(__file__).resolve().parents[1]
PREFIX = json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]


def declared_operations() -> set[tuple[str, str]]:
    """(METHOD, path) pairs; an optional route parameter `{x?}` gives two paths."""
    out = set()
    for fn in functions().values():
        bindings = json.loads(fn.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b["type"] == "httpTrigger"), None)
        if trigger is None:
            continue
        route = f"/{PREFIX}/{trigger['route']}"
        paths = {route}
        optional = re.search(r"/\{(\w+)\?\}$", route)
        if optional:
            paths = {route[: optional.start()], route[: optional.start()] + f"/{{{optional[1]}}}"}
        for path in paths:
            for method in trigger["methods"]:
                out.add((method.upper(), path))
    return out


def documented_operations() -> set[tuple[str, str]]:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return {(method.upper(), path) for path, item in spec["paths"].items()
            for method in item if method in {"get", "post", "put", "patch", "delete"}}


def test_every_route_is_documented_and_every_documented_route_exists():
    assert declared_operations() == documented_operations()


def test_every_documented_error_code_is_in_the_catalogue():
    from shared.problems import CATALOGUE

    text = (ROOT / "openapi.yaml").read_text()
    mentioned = set(re.findall(r"`([a-z]+\.[a-z_]+)`", text)) - {"shared.problems"}
    assert mentioned <= set(CATALOGUE)
    assert mentioned  # the document names codes at all
