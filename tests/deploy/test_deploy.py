"""Static checks of deploy/: compose stack, Dockerfile, Prometheus, Alertmanager, Grafana, Logstash.

Nothing here starts a container (no Docker engine on the build machines). What is checked is
what can be checked without one: promtool on the Prometheus config and rules (including rule
unit tests), the structure of the compose file, cross-references between the files (ports,
service names, users, mount paths, variables), the metric names dashboards and rules use, and
the image's healthcheck script, run for real against a local HTTP server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.models import LogEvent
from shared.settings import SERVICE_NAMES, Settings
from tests.deploy import promql_names

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
HEALTHCHECK_SCRIPT = COMPOSE_DIR / "healthcheck.py"
OBSERVABILITY = DEPLOY / "observability"
PROMETHEUS_DIR = OBSERVABILITY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_FILE = PROMETHEUS_DIR / "rules" / "logwarden.rules.yml"
RULES_TEST_FILE = PROMETHEUS_DIR / "tests" / "logwarden.rules.test.yml"
ALERTMANAGER_CONFIG = OBSERVABILITY / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = OBSERVABILITY / "grafana"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
LOGSTASH_PIPELINE = COMPOSE_DIR / "logstash" / "pipeline" / "logwarden.conf"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`; `make test` installs it)"
)

# LOGWARDEN_* variables that are not Settings fields: they configure compose itself, not a service.
COMPOSE_ONLY_VARIABLES = {
    "LOGWARDEN_BIND": "host address of the published ports",
    "LOGWARDEN_SHIPPERS_BIND": "host address of the shipper ports (profiles shippers, logstash)",
    "LOGWARDEN_IMAGE_TAG": "tag of the image compose builds",
}
# Environment keys that hold secrets.
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
FILE_REFERENCE = re.compile(r"^(/|[\w.-]+/)[\w./-]*\.(key|pem|crt|p12)$")
REQUIRED_VARIABLE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$")
VARIABLE_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?])[^}]*)?\}")
PUBLISHED_OUTSIDE_PROFILES = {"gateway": 8000, "grafana": 3000, "kibana": 5601, "jaeger": 16686}
ONE_SHOT_CONDITION = "service_completed_successfully"
LONG_RUNNING_CONDITION = "service_healthy"
FIRST_VERSION_CSV_COLUMNS = [
    "timestamp", "log_type", "level", "client_ip", "user_id", "method", "endpoint", "status_code",
    "response_time_ms", "user_agent", "message", "sql_query", "query_duration_ms", "server", "tenant_id",
]  # fmt: skip
BUILTIN_GRAFANA_DATASOURCES = {"__expr__", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}


# --- helpers -------------------------------------------------------------------------------------


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose-style interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        name, modifier = match.group(1), match.group(2) or ""
        if name in env and (env[name] or not modifier.startswith(":")):
            return env[name]
        if modifier.startswith((":-", "-")):
            return modifier.split("-", 1)[1]
        if modifier.startswith((":?", "?")):
            raise KeyError(f"required variable {name} is unset")
        return ""

    return VARIABLE_REFERENCE.sub(replace, value).replace("$$", "$")


def load_compose() -> dict[str, Any]:
    """compose.yaml with its `include:`d files merged in (anchors and merge keys resolved)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    for item in document.get("include", []) or []:
        paths = item if isinstance(item, str) else item.get("path")
        for path in [paths] if isinstance(paths, str) else paths:
            included = yaml.safe_load((COMPOSE_DIR / path).read_text())
            for section in ("services", "volumes", "networks", "secrets", "configs"):
                document.setdefault(section, {}).update(included.get(section) or {})
    return document


def compose_texts() -> str:
    """The compose file(s) as text, full-line comments removed (compose interpolates no comment)."""
    text = COMPOSE_FILE.read_text()
    for item in yaml.safe_load(text).get("include", []) or []:
        path = item if isinstance(item, str) else item.get("path")
        text += "\n" + (COMPOSE_DIR / path).read_text()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.partition("=") for item in env]
        return {key: (value if sep else None) for key, sep, value in pairs}
    return {key: (None if value is None else str(value)) for key, value in env.items()}


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def sample_env() -> dict[str, str]:
    """.env.example with every empty value filled by a fresh strong secret."""
    return {key: value or secrets.token_hex(24) for key, value in env_example().items()}


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source", "")), str(volume["target"])))
        else:
            source, target = volume.split(":")[:2]
            mounts.append((source, target))
    return mounts


def published_ports(service: dict[str, Any]) -> list[str]:
    return [str(port) for port in service.get("ports") or []]


def container_port(port: str) -> int:
    return int(port.rsplit(":", 1)[1].split("/")[0])


def load_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]


def dashboards() -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def datasource_uid(reference: Any) -> str | None:
    if isinstance(reference, dict):
        return reference.get("uid")
    return reference  # legacy string reference (a name), or None


def provisioned_datasources() -> list[dict[str, Any]]:
    return yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# --- promtool -------------------------------------------------------------------------------------


@needs_promtool
def test_promtool_check_config() -> None:
    """prometheus.yml is valid and its rule_files (relative to it) resolve to the rules file."""
    result = run_promtool("check", "config", PROMETHEUS_CONFIG.name, cwd=PROMETHEUS_DIR)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "logwarden.rules.yml" in output, f"rule_files did not pick up the rules file:\n{output}"
    assert re.search(r"SUCCESS: [1-9]\d* rules found", output), output


@needs_promtool
def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    """The alerts fire when they should, with the expected labels and annotations, and only then."""
    result = run_promtool("test", "rules", str(RULES_TEST_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST_FILE.read_text()))
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert alerts <= tested, f"alerts without a unit test: {sorted(alerts - tested)}"


# --- Prometheus config and rules ------------------------------------------------------------------


def test_prometheus_scrapes_the_four_services_on_their_settings_ports(services: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    defaults = Settings(internal_token=secrets.token_hex(32))
    for name in SERVICE_NAMES:
        assert name in jobs, f"no scrape job for {name}"
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        targets = [f"{host}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for host in sd["names"]] + [
            target for static in job.get("static_configs", []) for target in static["targets"]
        ]
        assert targets == [f"{name}:{defaults.service_port(name)}"], targets
        assert name in services, f"scrape target {name} is not a compose service"
    assert "prometheus" in jobs
    alertmanagers = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]
    assert "alertmanager" in services
    assert config["rule_files"] and all(not Path(pattern).is_absolute() for pattern in config["rule_files"])


def test_prometheus_container_reads_this_config(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    mounts = dict(volume_mounts(prometheus))
    assert mounts["../observability/prometheus"] == "/etc/prometheus"
    assert (COMPOSE_DIR / "../observability/prometheus").resolve() == PROMETHEUS_DIR.resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


REQUIRED_ALERTS = {
    "LogwardenServiceDown": "1m",
    "LogwardenHighErrorRate": "5m",
    "LogwardenIndexingLagHigh": "5m",
    "LogwardenDeadLettersGrowing": None,
    "LogwardenGateway5xx": None,
    "LogwardenSearchLatencyHigh": None,
    "LogwardenLowIngestionRate": None,
}


def test_rules_have_the_required_alerts_with_severity_and_runbook() -> None:
    rules = {rule["alert"]: rule for rule in load_rules() if "alert" in rule}
    for name, duration in REQUIRED_ALERTS.items():
        assert name in rules, f"missing alert {name}"
        if duration:
            assert rules[name].get("for") == duration, f"{name}: for {rules[name].get('for')}"
    for name, rule in rules.items():
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{name} lacks a {key} annotation"
    assert "up == 0" in rules["LogwardenServiceDown"]["expr"]
    search = rules["LogwardenSearchLatencyHigh"]["expr"]
    assert "histogram_quantile(0.95" in search and 'kind="search"' in search
    assert re.search(r"\)\s*>\s*1\s*$", search.strip() + "\n"), search
    lag = rules["LogwardenIndexingLagHigh"]["expr"]
    assert "logwarden_consumer_lag) > 10000" in lag and "logwarden_oldest_pending_age_seconds) > 60" in lag
    assert "increase(logwarden_dead_lettered_total[10m])" in rules["LogwardenDeadLettersGrowing"]["expr"]


def test_rules_use_only_declared_metrics() -> None:
    exprs = [rule["expr"] for rule in load_rules()]
    assert promql_names.unknown_names(exprs) == {}
    used = set().union(*(promql_names.metric_names(expr) for expr in exprs))
    assert {"up", "http_requests_total", "logwarden_query_latency_seconds_bucket"} <= used


# --- the PromQL name extractor itself ------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.95, sum by (le, endpoint) "
            '(rate(http_request_latency_seconds_bucket{job="gateway"}[$__rate_interval])))',
            {"http_request_latency_seconds_bucket"},
        ),
        ("sum(rate(a_total[30m] offset 1d)) < 0.5 * sum(rate(b_total[5m:1m]))", {"a_total", "b_total"}),
        ('absent(up{job="x"}) or absent(up)', {"up"}),
        ("sum(foo) by (job) / on (job) group_left (owner) bar", {"foo", "bar"}),
        ("1e3 * errors_total > bool 2 and 5m_not_a_name", {"errors_total"}),
        ('label_replace(metric_a, "dst", "$1", "src", "(.*)") unless ignoring (x) metric_b', {"metric_a", "metric_b"}),
        ('max_over_time(rate(c_total{a=~"b|c"}[5m])[1h:1m])', {"c_total"}),
        ("time() - vector(1)", set()),
    ],
)
def test_promql_name_extractor(expr: str, names: set[str]) -> None:
    assert promql_names.metric_names(expr) == names


def test_promql_unknown_names_catches_undeclared_metrics() -> None:
    allowed = promql_names.allowed_names()
    assert "logwarden_consumer_lag" in allowed and "up" in allowed
    assert "http_request_latency_seconds_bucket" in allowed and "http_requests_total" in allowed
    assert "process_resident_memory_bytes" in allowed
    assert "http_request_latency_seconds" not in allowed  # a histogram's family name is no series
    bad = "sum(rate(logwarden_made_up_total[5m])) / sum(rate(http_requests_total[5m]))"
    assert promql_names.unknown_names([bad], allowed) == {bad: {"logwarden_made_up_total"}}
    assert promql_names.family_name("http_request_latency_seconds_bucket") == "http_request_latency_seconds"
    assert promql_names.family_name("http_requests_total") == "http_requests"


# --- Alertmanager ---------------------------------------------------------------------------------


def test_alertmanager_routes_every_alert_to_a_webhook_receiver(services: dict[str, Any]) -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}

    def walk(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield route
        for child in route.get("routes", []) or []:
            yield from walk(child)

    for route in walk(config["route"]):
        if "receiver" in route:
            assert route["receiver"] in receivers, route
    root = receivers[config["route"]["receiver"]]
    webhooks = root.get("webhook_configs") or []
    assert webhooks, "the default receiver has no webhook"
    # The URL is a secret: read from the file compose writes from ALERTMANAGER_WEBHOOK_URL.
    url_file = webhooks[0].get("url_file")
    assert url_file and "url" not in webhooks[0]
    alertmanager = services["alertmanager"]
    script = " ".join(alertmanager["command"])
    assert f'"$$ALERTMANAGER_WEBHOOK_URL" > {url_file}' in script
    assert REQUIRED_VARIABLE.match(environment(alertmanager)["ALERTMANAGER_WEBHOOK_URL"] or "")
    tmpfs = [str(entry).split(":")[0] for entry in alertmanager.get("tmpfs", [])]
    assert str(Path(url_file).parent) in tmpfs, "the URL file must live on a tmpfs"
    # url_file exists from Alertmanager 0.26 on.
    version = re.search(r":v(\d+)\.(\d+)\.(\d+)$", alertmanager["image"])
    assert version and (int(version[1]), int(version[2])) >= (0, 26), alertmanager["image"]


# --- compose: structure -----------------------------------------------------------------------------


def test_compose_has_the_whole_stack(services: dict[str, Any]) -> None:
    expected = {
        *SERVICE_NAMES, "redis", "elasticsearch", "es-setup", "kibana", "kibana-setup", "mongo",
        "jaeger", "prometheus", "grafana", "alertmanager", "logstash", "ingest-shippers",
    }  # fmt: skip
    assert expected <= set(services), sorted(expected - set(services))
    assert services["logstash"].get("profiles") == ["logstash"]
    assert services["ingest-shippers"].get("profiles") == ["shippers"]


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check.get("test")
        assert test and test != ["NONE"], f"{name}: empty healthcheck test"
        if isinstance(test, list):
            assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, f"{name}: {test}"


def test_every_dependency_waits_on_a_condition(services: dict[str, Any]) -> None:
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must be a mapping with conditions"
        graph[name] = set(depends)
        for target, options in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = (options or {}).get("condition")
            expected = ONE_SHOT_CONDITION if is_one_shot(services[target]) else LONG_RUNNING_CONDITION
            assert condition == expected, f"{name} -> {target}: {condition}, expected {expected}"
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} needs {target}, which is in a profile"

    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in visiting, f"dependency cycle: {' -> '.join([*path, node])}"
        if node in done:
            return
        visiting.add(node)
        for child in graph[node]:
            visit(child, [*path, node])
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, [])


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = interpolate(service.get("image", ""))
        assert image, f"{name} has no image"
        repository, _, tag = image.rpartition("/")[2].partition(":")
        assert tag, f"{name}: image {image} has no tag"
        assert tag != "latest" and "latest" not in tag.split("-"), f"{name}: {image}"
        assert re.match(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to an exact version"
        assert "@" not in repository or tag


def test_no_literal_secrets_in_compose(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_KEY.search(key):
                # A pass-through (no value) is allowed: the value comes from .env, never from here.
                # So is a path to a file (a TLS key on a volume), which is not the secret itself.
                assert value is None or REQUIRED_VARIABLE.match(value) or FILE_REFERENCE.match(value), (
                    f"{name}: {key}={value!r}"
                )
            for credentials in re.findall(r"://[^/@\s]*:([^@\s]+)@", value or ""):
                assert REQUIRED_VARIABLE.match(credentials), f"{name}: {key} embeds a literal password"
    lowered = compose_texts().lower()
    for weak in ("admin123", "password123", "changeme", "letmein", "changeit"):
        assert weak not in lowered


def test_env_example_lists_every_variable_with_empty_secrets() -> None:
    text = compose_texts()
    used = {match.group(1) for match in VARIABLE_REFERENCE.finditer(text)}
    compose = load_compose()
    passthrough = {
        key for service in compose["services"].values() for key, value in environment(service).items() if value is None
    }
    example = env_example()
    missing = (used | passthrough) - set(example)
    assert not missing, f"variables used in compose but not in .env.example: {sorted(missing)}"
    stale = set(example) - used - passthrough
    assert not stale, f".env.example lists variables compose does not use: {sorted(stale)}"
    required = {
        match.group(1) for match in VARIABLE_REFERENCE.finditer(text) if (match.group(2) or "").startswith(":?")
    }
    for key in required | {key for key in example if SECRET_KEY.search(key)}:
        assert example[key] == "", f".env.example must leave {key} empty, not {example[key]!r}"
    assert "openssl rand" in ENV_EXAMPLE.read_text()
    # With every secret filled in, every variable resolves.
    env = sample_env()
    interpolate(text, env)


def test_env_example_secret_variables_are_required_in_compose() -> None:
    text = compose_texts()
    for key, value in env_example().items():
        if value == "" and key not in {"LOGSTASH_API_KEY"}:
            references = [m.group(2) or "" for m in VARIABLE_REFERENCE.finditer(text) if m.group(1) == key]
            assert references and all(r.startswith(":?") for r in references), (
                f"{key} is empty in .env.example, so compose must require it with ${{{key}:?...}}"
            )


def test_only_gateway_grafana_kibana_and_jaeger_publish_ports(services: dict[str, Any]) -> None:
    publishing = {
        name for name, service in services.items() if published_ports(service) and not service.get("profiles")
    }
    assert publishing == set(PUBLISHED_OUTSIDE_PROFILES), sorted(publishing)
    for name, port in PUBLISHED_OUTSIDE_PROFILES.items():
        ports = published_ports(services[name])
        assert [container_port(p) for p in ports] == [port], ports
        for entry in ports:
            assert entry.startswith("${LOGWARDEN_BIND:-127.0.0.1}:"), f"{name} publishes {entry}"
            assert interpolate(entry).startswith("127.0.0.1:")
    for name, service in services.items():
        for entry in published_ports(service):
            assert interpolate(entry).startswith("127.0.0.1:"), f"{name}: {entry} is not on localhost by default"
    shippers = published_ports(services["ingest-shippers"])
    assert {interpolate(p).split(":", 1)[1] for p in shippers} == {"5170:5170/tcp", "5514:5514/tcp", "5514:5514/udp"}


def test_volumes_are_named_or_existing_paths(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, target in volume_mounts(service):
            assert target.startswith("/"), f"{name}: {target}"
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {sorted(declared - used)}"
    for data in ("redis-data", "es-data", "mongo-data", "prometheus-data", "grafana-data"):
        assert data in declared


def test_redis_persists_and_requires_a_password(services: dict[str, Any]) -> None:
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and '--requirepass "$$REDIS_PASSWORD"' in command
    assert re.match(r"redis:7\.\d+\.\d+", redis["image"])
    assert ("redis-data", "/data") in volume_mounts(redis)


def test_elasticsearch_security_and_setup_users(services: dict[str, Any]) -> None:
    elasticsearch = environment(services["elasticsearch"])
    assert elasticsearch["xpack.security.enabled"] == "true"
    assert elasticsearch["xpack.security.http.ssl.enabled"] == "true"
    assert elasticsearch["discovery.type"] == "single-node"
    assert re.match(r"docker\.elastic\.co/elasticsearch/elasticsearch:8\.\d+\.\d+$", services["elasticsearch"]["image"])
    setup = (COMPOSE_DIR / "elasticsearch" / "setup.sh").read_text()
    assert "/_security/user/kibana_system/_password" in setup
    app_user = environment(services["gateway"])["LOGWARDEN_ELASTICSEARCH_USERNAME"]
    grafana_user = next(d for d in provisioned_datasources() if d["type"] == "elasticsearch")["basicAuthUser"]
    for user in (app_user, grafana_user):
        assert f"/_security/user/{user} " in setup, f"es-setup does not create {user}"
    # Every secret the setup script reads is given to it by compose.
    given = environment(services["es-setup"])
    for variable in set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*PASSWORD)", setup)):
        assert variable in given, f"setup.sh reads {variable}, which compose does not pass"
    data_view = (COMPOSE_DIR / "kibana" / "create-data-view.sh").read_text()
    assert '"title": "logwarden-logs-*"' in data_view and '"timeFieldName": "timestamp"' in data_view


@pytest.mark.parametrize("script", sorted(p.name for p in COMPOSE_DIR.glob("*/*.sh")))
def test_shell_scripts_parse(script: str) -> None:
    path = next(COMPOSE_DIR.glob(f"*/{script}"))
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_mongo_app_user_matches_the_url(services: dict[str, Any]) -> None:
    url = environment(services["query"])["LOGWARDEN_MONGODB_URL"] or ""
    match = re.match(r"mongodb://(\w+):\$\{(\w+):\?[^}]+\}@mongo:27017/(\w+)\?authSource=(\w+)$", url)
    assert match, url
    user, password_variable, database, auth_source = match.groups()
    init = (COMPOSE_DIR / "mongo" / "init-logwarden.js").read_text()
    assert f'user: "{user}"' in init and f'getSiblingDB("{database}")' in init and auth_source == database
    assert f"process.env.{password_variable}" in init
    assert password_variable in environment(services["mongo"])
    assert REQUIRED_VARIABLE.match(environment(services["mongo"])["MONGO_INITDB_ROOT_PASSWORD"] or "")


# --- compose: the four logwarden services --------------------------------------------------------


def test_logwarden_variables_are_settings_fields() -> None:
    fields = set(Settings.model_fields)
    texts = [compose_texts(), ENV_EXAMPLE.read_text()]
    texts += [
        p.read_text()
        for p in DEPLOY.rglob("*")
        if p.is_file() and p.suffix in {".yml", ".yaml", ".md", ".sh", ".conf", ".py", ".json"}
    ]
    if OPERATIONS_DOC.exists():
        texts.append(OPERATIONS_DOC.read_text())
    names = set().union(*(re.findall(r"\bLOGWARDEN_[A-Z0-9_]+\b", text) for text in texts))
    unknown = {
        name for name in names
        if name not in COMPOSE_ONLY_VARIABLES and name.removeprefix("LOGWARDEN_").lower() not in fields
        and not re.fullmatch(r"LOGWARDEN_(NAME|SERVICE)_PORT", name)  # placeholder in docs
    }  # fmt: skip
    assert not unknown, f"LOGWARDEN_* names that are not Settings fields: {sorted(unknown)}"
    assert {"LOGWARDEN_INTERNAL_TOKEN", "LOGWARDEN_REDIS_URL", "LOGWARDEN_ELASTICSEARCH_URL"} <= names


def test_services_environment_builds_valid_settings(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Interpolated with a filled .env, each service's environment is a valid Settings."""
    env = sample_env()
    for key in list(os.environ):
        if key.startswith("LOGWARDEN_"):
            monkeypatch.delenv(key)
    image = None
    for name in SERVICE_NAMES:
        service = services[name]
        assert service["command"] == ["logwarden", "serve", name]
        assert service["build"] == {"context": "../..", "dockerfile": "deploy/compose/Dockerfile"}
        assert (COMPOSE_DIR / service["build"]["context"]).resolve() == REPO
        image = image or service["image"]
        assert service["image"] == image, "the four services must share one image"
        values = {key: interpolate(value or "", env) for key, value in environment(service).items()}
        with monkeypatch.context() as patch:
            for key, value in values.items():
                patch.setenv(key, value)
            settings = Settings()
        assert settings.log_store == "elasticsearch" and settings.meta_store == "mongodb"
        assert settings.bind_host == "0.0.0.0"
        assert settings.elasticsearch_url == "https://elasticsearch:9200"
        assert settings.redis_url and settings.redis_url.endswith("@redis:6379/0")
        assert settings.otlp_endpoint == "http://jaeger:4318"
        assert settings.internal_token.get_secret_value() == env["LOGWARDEN_INTERNAL_TOKEN"]
        for other in SERVICE_NAMES:
            if other != "gateway":
                assert settings.service_url(other) == f"http://{other}:{settings.service_port(other)}"
        port = settings.service_port(name)
        assert service["healthcheck"]["test"] == ["CMD", "logwarden-healthcheck", name]
        if name != "gateway":
            assert str(port) in [str(p) for p in service.get("expose", [])]
        ca = settings.elasticsearch_ca_certs
        assert ca is not None and any(str(ca).startswith(target) for _, target in volume_mounts(service))


def test_shippers_profile_is_an_ingest_replica(services: dict[str, Any]) -> None:
    shippers, ingest = services["ingest-shippers"], services["ingest"]
    assert shippers["command"] == ingest["command"] and shippers["image"] == ingest["image"]
    assert environment(shippers) == environment(ingest)
    assert "ingest" in shippers["networks"]["default"]["aliases"]


# --- Dockerfile -------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest)
    froms = [interpolate(rest.split()[0], args) for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder and a runtime stage"
    for base in froms:
        assert re.match(r"python:3\.11\.\d+-slim", base), f"unpinned or unexpected base {base}"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    assert any(keyword == "USER" for keyword, _ in final_stage)
    healthchecks = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "logwarden-healthcheck" in healthchecks[0]
    assert "/health/live" in HEALTHCHECK_SCRIPT.read_text()
    exposed = set(" ".join(rest for keyword, rest in instructions if keyword == "EXPOSE").split())
    assert {"8000", "8001", "8002", "8003", "5170", "5514", "5514/udp"} <= exposed
    assert any(keyword == "RUN" and "pip wheel" in rest and "/wheels" in rest for keyword, rest in instructions)
    for keyword, rest in instructions:
        if keyword in {"ENV", "ARG"}:
            assert not SECRET_KEY.search(rest), f"{keyword} {rest}: no secrets in the image"
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"][-1]
    assert json.loads(cmd)[:2] == ["logwarden", "serve"]


def test_dockerfile_copies_only_existing_allowed_sources() -> None:
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        parts = [part for part in rest.split() if not part.startswith("--")]
        for source in parts[:-1]:
            assert source in allowed, f"COPY {source} is excluded by Dockerfile.dockerignore"
            if source != "README.md":  # written by the docs owner; pyproject's readme names it
                assert (REPO / source).exists(), f"COPY source {source} missing"
    assert "README.md" in (REPO / "pyproject.toml").read_text()


# --- the image's healthcheck script, run for real ----------------------------------------------


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/health/live" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server(request: pytest.FixtureRequest) -> Iterator[int]:
    handler = type("Handler", (_Health,), {"status": getattr(request, "param", 200)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_healthcheck(*args: str, port: int, service: str = "query") -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env[f"LOGWARDEN_{service.upper()}_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT), *args], env=env, capture_output=True, timeout=30, check=False
    ).returncode


def test_healthcheck_script_passes_on_200(health_server: int) -> None:
    assert run_healthcheck("query", port=health_server) == 0


@pytest.mark.parametrize("health_server", [503], indirect=True)
def test_healthcheck_script_fails_on_503(health_server: int) -> None:
    assert run_healthcheck("query", port=health_server) == 1


def test_healthcheck_script_fails_when_nothing_listens(health_server: int) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = closed.server_address[1]
    closed.server_close()  # the port was just free; nothing listens on it now
    assert run_healthcheck("query", port=port) == 1
    assert run_healthcheck("no-such-service", port=health_server) == 2


def test_healthcheck_script_reads_the_service_from_the_command_line() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("logwarden_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.service_from_cmdline(b"/sbin/docker-init\0--\0logwarden\0serve\0realtime\0") == "realtime"
    assert module.service_from_cmdline(b"/usr/local/bin/logwarden\0serve\0ingest\0") == "ingest"
    assert module.service_from_cmdline(b"logwarden\0up\0") == "gateway"
    assert module.service_port("query", {}) == Settings(internal_token="x" * 32).query_port
    assert module.service_port("realtime", {"LOGWARDEN_REALTIME_PORT": "9003"}) == 9003
    assert module.DEFAULT_PORTS == {
        name: Settings(internal_token="x" * 32).service_port(name) for name in SERVICE_NAMES
    }


# --- Grafana -----------------------------------------------------------------------------------------


def test_grafana_datasources_have_no_literal_secrets(services: dict[str, Any]) -> None:
    datasources = provisioned_datasources()
    uids = [d["uid"] for d in datasources]
    assert len(uids) == len(set(uids))
    assert {d["type"] for d in datasources} >= {"prometheus", "elasticsearch", "jaeger"}
    grafana = services["grafana"]
    grafana_env = environment(grafana)
    mount_targets = [target for _, target in volume_mounts(grafana)]
    for datasource in datasources:
        host = re.match(r"https?://([\w-]+):(\d+)", datasource["url"])
        assert host and host[1] in services, datasource["url"]
        for key, value in (datasource.get("secureJsonData") or {}).items():
            reference = re.fullmatch(r"\$__env\{(\w+)\}|\$__file\{([^}]+)\}", str(value))
            assert reference, f"{datasource['name']}: {key} is a literal"
            if reference[1]:
                assert REQUIRED_VARIABLE.match(grafana_env.get(reference[1]) or ""), reference[1]
            else:
                assert any(reference[2].startswith(target + "/") for target in mount_targets), reference[2]
    elastic = next(d for d in datasources if d["type"] == "elasticsearch")
    assert elastic["jsonData"]["index"] == "logwarden-logs-*"
    assert elastic["jsonData"]["timeField"] == "timestamp"
    assert elastic["basicAuth"] is True and elastic["url"] == "https://elasticsearch:9200"
    assert REQUIRED_VARIABLE.match(grafana_env["GF_SECURITY_ADMIN_PASSWORD"] or "")


def test_grafana_loads_dashboards_from_the_mounted_folder(services: dict[str, Any]) -> None:
    providers = yaml.safe_load(DASHBOARD_PROVIDERS_FILE.read_text())["providers"]
    mounts = dict(volume_mounts(services["grafana"]))
    assert mounts["../observability/grafana/dashboards"] in {p["options"]["path"] for p in providers}
    assert mounts["../observability/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_dashboards_are_valid_with_unique_uids_and_titles() -> None:
    boards = dashboards()
    assert len(boards) >= 2
    uids = [board["uid"] for board in boards.values()]
    titles = [board["title"] for board in boards.values()]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
    assert {"logwarden overview", "SaaS KPIs"} <= set(titles)
    known = {d["uid"] for d in provisioned_datasources()} | BUILTIN_GRAFANA_DATASOURCES
    for path, board in boards.items():
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 30, path
        assert re.fullmatch(r"[\w-]{1,40}", board["uid"]), path
        ids = [panel["id"] for panel in all_panels(board)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for panel in all_panels(board):
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (path.name, panel["title"])
            area = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not area & cells, f"{path.name}: panel {panel['title']!r} overlaps another"
            cells |= area
            if panel["type"] == "row":
                continue
            assert datasource_uid(panel.get("datasource")) in known, (path.name, panel["title"])
            targets = panel.get("targets") or []
            assert targets, f"{path.name}: panel {panel['title']!r} has no query"
            refs = [target["refId"] for target in targets]
            assert len(refs) == len(set(refs)), (path.name, panel["title"])
            for target in targets:
                uid = datasource_uid(target.get("datasource") or panel["datasource"])
                assert uid in known, f"{path.name}: {panel['title']!r} uses unknown datasource {uid}"
                if uid == "__expr__":
                    for ref in re.findall(r"\$(\w+)", target["expression"]):
                        assert ref in refs, f"{panel['title']!r}: expression uses missing ${ref}"


def prometheus_exprs(board: dict[str, Any]) -> list[str]:
    types = {d["uid"]: d["type"] for d in provisioned_datasources()}
    return [
        target["expr"]
        for panel in all_panels(board)
        for target in panel.get("targets") or []
        if types.get(datasource_uid(target.get("datasource") or panel.get("datasource")) or "") == "prometheus"
    ]


def test_dashboards_use_only_declared_metrics() -> None:
    exprs = [expr for board in dashboards().values() for expr in prometheus_exprs(board)]
    assert exprs
    assert promql_names.unknown_names(exprs) == {}


def test_overview_dashboard_covers_the_pipeline() -> None:
    board = next(b for b in dashboards().values() if b["title"] == "logwarden overview")
    used = set().union(*(promql_names.metric_names(expr) for expr in prometheus_exprs(board)))
    required = {
        "up", "http_requests_total", "http_request_latency_seconds_bucket", "logwarden_ingested_events_total",
        "logwarden_rejected_events_total", "logwarden_consumer_lag", "logwarden_oldest_pending_age_seconds",
        "logwarden_live_clients", "logwarden_live_events_pushed_total", "logwarden_live_events_dropped_total",
        "logwarden_query_latency_seconds_bucket", "logwarden_dead_lettered_total",
    }  # fmt: skip
    assert required <= used, sorted(required - used)
    exprs = " ".join(prometheus_exprs(board))
    for quantile in ("0.50", "0.95", "0.99"):
        assert (
            f'histogram_quantile({quantile}, sum by (le) (rate(logwarden_query_latency_seconds_bucket{{kind="search"}}'
            in exprs
        )
    assert (
        'histogram_quantile(0.95, sum by (le, endpoint) (rate(http_request_latency_seconds_bucket{job="gateway"}'
        in exprs
    )


def test_kpi_dashboard_queries_event_fields() -> None:
    board = next(b for b in dashboards().values() if b["title"] == "SaaS KPIs")
    fields: set[str] = set()
    for panel in all_panels(board):
        for target in panel.get("targets") or []:
            if datasource_uid(target.get("datasource")) != "logwarden-es":
                continue
            assert target["timeField"] == "timestamp"
            fields |= {m["field"] for m in target.get("metrics", []) if "field" in m}
            fields |= {b["field"] for b in target.get("bucketAggs", []) if "field" in b}
            fields |= set(re.findall(r"(?:_exists_:)?\b(\w+):", target.get("query", ""))) - {"_exists_"}
            fields |= set(re.findall(r"_exists_:(\w+)", target.get("query", "")))
    assert fields <= set(LogEvent.model_fields), sorted(fields - set(LogEvent.model_fields))
    assert {"level", "service", "endpoint", "response_time_ms", "status_code", "timestamp"} <= fields
    titles = {panel["title"] for panel in all_panels(board)}
    for wanted in (
        "Error rate by service",
        "Errors over time",
        "Events over time by level",
        "Status code distribution",
    ):
        assert wanted in titles
    assert any(title.startswith("Slowest endpoints") for title in titles)


# --- Logstash profile ----------------------------------------------------------------------------


def test_logstash_pipeline_ships_first_version_columns_to_the_gateway(services: dict[str, Any]) -> None:
    pipeline = LOGSTASH_PIPELINE.read_text()
    code = re.sub(r"#[^\n]*", "", pipeline)
    assert code.count("{") == code.count("}")
    columns = re.search(r"columns\s*=>\s*\[(.*?)\]", code, re.DOTALL)
    assert columns and re.findall(r'"(\w+)"', columns[1]) == FIRST_VERSION_CSV_COLUMNS
    assert re.search(r"tcp\s*\{[^}]*port\s*=>\s*5000[^}]*codec\s*=>\s*json_lines", code)
    assert re.search(r'hosts\s*=>\s*\["http://gateway:8000"\]', code) and re.search(r'path\s*=>\s*"/es"', code)
    assert re.search(r"ilm_enabled\s*=>\s*false", code) and re.search(r"manage_template\s*=>\s*false", code)
    secret = re.search(r'(?:password|api_key)\s*=>\s*"\$\{(\w+)\}"', code)
    assert secret, "the API key must come from the environment"
    logstash = services["logstash"]
    assert secret[1] in environment(logstash)
    assert "../observability" not in str(logstash["volumes"])
    assert ("./logstash/pipeline", "/usr/share/logstash/pipeline") in volume_mounts(logstash)
    assert services["gateway"]["ports"] and container_port(published_ports(services["gateway"])[0]) == 8000


# --- docs -------------------------------------------------------------------------------------------


def test_operations_doc_states_what_was_verified() -> None:
    text = OPERATIONS_DOC.read_text()
    assert "No Docker engine was available on the build machines" in " ".join(text.split())
    assert "cp deploy/compose/.env.example deploy/compose/.env" in text
    assert "docker compose -f deploy/compose/compose.yaml up -d" in text
    assert "LOGWARDEN_RETENTION_DAYS" in text
