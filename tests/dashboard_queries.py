"""The dashboard's queries as Grafana sends them: variables resolved from a Prometheus-compatible API, then
every panel's expression rendered, for the end-to-end tests on real servers."""

from __future__ import annotations

import json
import math
import re

from .helpers import ROOT

DASHBOARD = ROOT / "grafana" / "dashboards" / "bliss-exporter.json"


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return [p for p in out if p["type"] != "row"]


def grafana_regex_escape(value: str) -> str:
    """What Grafana's Prometheus data source does to each value of a multi-value variable."""
    return re.sub(r"([\\^$*+?.()|{}\[\]'])", r"\\\\\1", value)


BUILTINS = {  # Grafana's built-in variables, for a dashboard showing the last 10 minutes of a 1 s scrape
    "__rate_interval": "30s", "__interval": "5s", "__interval_ms": "5000", "__range": "10m", "__range_s": "600",
    "__range_ms": "600000",
}


def render(expr: str, variables: dict[str, str]) -> str:
    def sub(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name not in variables:
            raise AssertionError(f"unknown variable ${name} in {expr!r}")
        return variables[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", sub, expr)


def resolve_variables(prom, dashboard: dict, fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Query variables resolved as Grafana does: label_values(selector, label) -> (v1|v2|...) from `prom`
    (anything with Prometheus' HTTP API: .api(path, **params)); `fixed`: variables chosen by the user."""
    values: dict[str, str] = dict(fixed or {})
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query" or var["name"] in values:
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", query.strip())
        assert m, f"variable {var['name']}: unsupported query {query!r}"
        selector, label = m.groups()
        params = {"match[]": render(selector, values)} if selector else {}
        found = prom.api(f"label/{label}/values", **params)
        if not found and var.get("includeAll") and var.get("allValue"):
            values[var["name"]] = var["allValue"]  # All, with nothing to list (no beamline label here)
            continue
        assert found, f"variable {var['name']}: {query} -> nothing"
        values[var["name"]] = "(" + "|".join(grafana_regex_escape(v) for v in found) + ")"
    return values


def panel_queries(dashboard: dict, variables: dict[str, str]) -> list[tuple[str, str]]:
    return [(f"panel {p['id']} {p['title']!r} {t['refId']}", render(t["expr"], variables))
            for p in all_panels(dashboard) for t in p["targets"]]


def finite(result: list[dict]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)
