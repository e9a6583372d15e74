"""Checks the PromQL of deploy/prometheus/alerts.yml and deploy/grafana/onair.json
against the code: every OnAir metric a query names must be one the code records (so a
renamed metric cannot leave an alert silently never firing). Writes every dashboard
query, Grafana's interval variables replaced, into a rules file for `promtool check
rules` to parse. Run by scripts/check-deploy.

Usage: deploy-queries.py REPO OUT_RULES_FILE
"""

import json
import pathlib
import re
import sys

import yaml

# Series redis_exporter exports (alerts.yml says it is required for them).
EXTERNAL_PREFIXES = ("redis_",)
# What the Prometheus exporter adds to a histogram's name, or a summary's.
SUFFIXES = ("_bucket", "_sum", "_count")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}
GRAFANA_VARIABLES = re.compile(r"\$__(rate_interval|interval|range)")


def recorded_metrics(repo):
    """Names passed to the metrics macros, literally or through a `const`."""
    names = set()
    for source in (repo / "crates").rglob("*.rs"):
        text = source.read_text()
        constants = dict(re.findall(r'const ([A-Z_]+): &str = "([a-z_]+)";', text))
        for literal, constant in re.findall(
                r'(?:counter|gauge|histogram)!\(\s*(?:"([a-z_]+)"|([A-Z_]+)\b)', text):
            name = literal or constants.get(constant)
            if name:
                names.add(name)
    return names


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers once label matchers, grouping
    clauses, range selectors, strings and function calls are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def known(name, recorded):
    if name in recorded or name.startswith(EXTERNAL_PREFIXES):
        return True
    return any(name.endswith(s) and name[: -len(s)] in recorded for s in SUFFIXES)


def main():
    repo, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    recorded = recorded_metrics(repo)
    queries = []
    alerts = yaml.safe_load((repo / "deploy/prometheus/alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            queries.append((f"alert {rule['alert']}", rule["expr"]))
    dashboard = json.loads((repo / "deploy/grafana/onair.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r}", target["expr"]))

    unknown = [(where, name) for where, expr in queries for name in sorted(metric_names(expr))
               if not known(name, recorded)]
    for where, name in unknown:
        print(f"{where}: {name} is not a metric OnAir records", file=sys.stderr)

    rules = [{"record": f"onair:dashboard_query_{i}", "expr": GRAFANA_VARIABLES.sub("5m", expr)}
             for i, (where, expr) in enumerate(queries) if where.startswith("panel")]
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    print(f"{len(queries)} queries name only recorded metrics" if not unknown
          else f"{len(unknown)} unknown metric names")
    sys.exit(1 if unknown else 0)


if __name__ == "__main__":
    main()
