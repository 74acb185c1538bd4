"""Logs and model monitoring that carry data end to end, as far as this machine can prove it: the
Fluentd configuration the kit generates, the Elasticsearch and Kibana configuration its Jobs send
(against stand-ins built from the documented APIs — not the services), the dashboard as code, and
the prediction event path through a real fluent-logger to a forward-protocol receiver."""

from __future__ import annotations

import fnmatch
import json
import re
import socketserver
import threading
from pathlib import Path

import msgpack
import pytest
import requests
import yaml
from es_security import Security
from fluent import sender as fluent_sender
from http_standin import foreign_calls
from kube_objects import configure_desired
from services import Connection, ElasticsearchStandIn, KibanaStandIn
from typer.testing import CliRunner

from infra import events
from infra.cli.main import app
from infra.config import load_config
from infra.configure import elasticsearch as configure_es
from infra.configure import kibana as configure_kibana
from infra.configure.api import ApiError, JsonApi
from infra.platform import elasticsearch, fluentd, grafana
from infra.platform.access import LOCAL_PORTS
from infra.platform.build import build_platform
from infra.platform.model import Endpoint
from infra.polling import Observation, poll_until

ADMIN = ("cd4ml-admin", "admin-pw")


def platform_for(**config):
    return build_platform(load_config({f"cd4ml:{k}": v for k, v in config.items()}), "local")


def desired_of(service) -> dict:
    return configure_desired(service)


# --- Fluentd: the generated configuration ---------------------------------------------------------

def output_blocks(config_text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r"<match ([^>]+)>.*?</match>", config_text, re.S)}


def test_fluentd_config_routes_logs_and_tenant_events_to_elasticsearch_8():
    platform = platform_for()
    (release,) = platform.services["fluentd"].releases
    values = release.values
    edge = next(e for e in platform.wiring if (e.consumer.id, e.provider.id) == ("fluentd", "elasticsearch"))
    outputs = output_blocks(values["fileConfigs"]["04_outputs.conf"])
    assert list(outputs) == ["kubernetes.**", "**"]  # container logs first; everything forwarded after
    for block in outputs.values():
        assert f"host {edge.endpoint.host}\n" in block and f"port {edge.endpoint.port}\n" in block
        assert "default_elasticsearch_version 8" in block and "suppress_type_name true" in block
        assert "user \"#{ENV['ES_USERNAME']}\"" in block and "password \"#{ENV['ES_PASSWORD']}\"" in block
    assert "logstash_prefix cd4ml-logs\n" in outputs["kubernetes.**"]
    events_block = outputs["**"]
    assert "logstash_prefix cd4ml-events-${tag[0]}\n" in events_block
    assert "<buffer tag>" in events_block  # the placeholder needs `tag` as a chunk key
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in values["env"]}
    assert env["ES_PASSWORD"] == {"name": edge.credentials.secret, "key": "password"}
    forward = values["fileConfigs"]["05_forward.conf"]
    assert "@type forward" in forward and "port 24224" in forward and "@label @DISPATCH" in forward
    assert values["service"]["ports"][0]["containerPort"] == 24224


def resolve_index(events_block: str, tag: str, day: str) -> str:
    """The index fluent-plugin-elasticsearch writes to for this tag (logstash_format + ${tag[N]})."""
    prefix = re.search(r"logstash_prefix (\S+)", events_block).group(1)
    parts = tag.split(".")
    return re.sub(r"\$\{tag\[(\d+)\]\}", lambda m: parts[int(m.group(1))], prefix) + f"-{day}"


class ForwardReceiver:
    """Fluentd's forward input as fluent-logger speaks to it: msgpack [tag, time, record]."""

    def __init__(self):
        self.messages: list[list] = []
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                unpacker = msgpack.Unpacker(raw=False, ext_hook=lambda code, data: data)
                while chunk := self.request.recv(65536):
                    unpacker.feed(chunk)
                    receiver.messages.extend(unpacker)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def sent_through_fluent_logger(tag_prefix: str, label: str, record: dict) -> tuple[str, dict]:
    """One record sent with the real fluent-logger to a forward receiver: the (tag, record) it decoded."""
    receiver = ForwardReceiver()
    try:
        logger = fluent_sender.FluentSender(tag_prefix, host="127.0.0.1", port=receiver.port, timeout=5)
        assert logger.emit(label, record), logger.last_error
        logger.close()
        # The receiver decodes on its own thread: wait for it (against a deadline), do not race it.
        poll_until(lambda: Observation(bool(receiver.messages), None, f"{len(receiver.messages)} messages"),
                   what="the event at the forward receiver", timeout=10)
    finally:
        receiver.stop()
    [(tag, _time, decoded)] = receiver.messages
    return tag, decoded


def test_a_prediction_event_travels_to_fluentd_and_lands_in_its_tenants_index():
    event = events.prediction_event(model_name="churn", model_version="3", pipeline_label="12",
                                    environment="production", latency_ms=4.2, prediction=0.87,
                                    features={"age": 41}, tenant="team-a")
    tenant, _, label = events.tag("team-a").partition(".")
    tag, record = sent_through_fluent_logger(tenant, label, event)
    assert tag == "team-a.prediction"
    assert record == event
    events.validate(record)
    block = output_blocks(fluentd.file_configs(elasticsearch.endpoint(_ns()))["04_outputs.conf"])["**"]
    index = resolve_index(block, tag, "2026.11.23")
    assert index == "cd4ml-events-team-a-2026.11.23"
    # ...which the events template, Kibana's data view and Grafana's datasource all cover: searchable by tenant.
    platform = platform_for()
    template = elasticsearch.desired_configuration(1, 3)["index_templates"][elasticsearch.EVENT_INDEX_PREFIX]
    patterns = template["index_patterns"] + [desired_of(platform.services["kibana"])["data_views"][0]["title"]]
    patterns += [f"{prefix}-*" for _, prefix in grafana.DATASOURCES.values() if prefix == "cd4ml-events"]
    assert len(patterns) == 3 and all(fnmatch.fnmatch(index, pattern) for pattern in patterns)


def test_the_workshops_own_events_outside_the_schema_land_in_their_tenants_index_for_that_tenant_only():
    """ThoughtWorksInc/cd4ml-workshop src/app.py l.29-31, 64-70: `sender.FluentSender(TENANT, ...)` and
    `emit('prediction', {'prediction': ..., 'item_nbr': ..., 'family': ..., ...})`, TENANT from its
    environment (the kit's platform-endpoints). Fluentd routes on the tag alone, the events template maps
    what it does not know dynamically, and only that tenant's role reads the index."""
    from smoke_fixtures import kit_security
    from stack_settings import workshop

    from infra.platform.variables import TENANT

    platform = build_platform(load_config(workshop(participantNames="ada,grace")), "workshop")
    [ada, grace] = platform.tenants
    from infra.render import service_objects

    endpoints = next(o for _, o in service_objects(platform.extra("app-environments"))
                     if o["kind"] == "ConfigMap" and o["metadata"].get("namespace") == ada.environments[0][1])
    tenant = endpoints["data"][TENANT]
    payload = {"prediction": 7, "date": "2017-06-14", "item_nbr": "99197", "family": "GROCERY I", "class": 1067,
               "perishable": 0, "transactions": 1000, "year": 2017, "month": 6, "day": 14, "dayofweek": 2,
               "days_til_end_of_data": 0, "dayoff": False}
    tag, record = sent_through_fluent_logger(tenant, "prediction", payload)
    with pytest.raises(events.InvalidEvent):
        events.validate(record)  # not the kit's schema...
    outputs = fluentd.file_configs(elasticsearch.endpoint(_ns()))
    assert "<filter" not in outputs["04_outputs.conf"]  # ...and nothing on its way drops it for that
    index = resolve_index(output_blocks(outputs["04_outputs.conf"])["**"], tag, "2026.12.07")
    assert index == "cd4ml-events-ada-2026.12.07"
    template = elasticsearch.desired_configuration(1, 3)["index_templates"][elasticsearch.EVENT_INDEX_PREFIX]
    assert template["template"]["mappings"].get("dynamic", True) is True  # unknown fields are mapped, not refused
    security = kit_security()
    security.role_definitions.update(yaml.safe_load(elasticsearch.roles_document(platform.tenants)))
    security.user_roles.update({t.login: (elasticsearch.tenant_role(t.name),) for t in (ada, grace)})
    assert security.index_allows("ada", index, "read") and not security.index_allows("grace", index, "read")


def _ns():
    from infra.platform.layout import Namespaces

    return Namespaces.from_config(load_config({}))


def test_the_event_schema_refuses_what_the_dashboards_could_not_read():
    with pytest.raises(events.InvalidEvent, match="exactly one of prediction"):
        events.prediction_event(model_name="m", model_version="1", pipeline_label="1", environment="s", latency_ms=1)
    with pytest.raises(events.InvalidEvent, match="no dots"):
        events.tag("team.a")
    good = events.prediction_event(model_name="m", model_version="1", pipeline_label="1", environment="s",
                                   latency_ms=1, error="bad input")
    assert good["status"] == "error" and "prediction" not in good
    with pytest.raises(events.InvalidEvent, match="latency_ms"):
        events.validate(good | {"latency_ms": "fast"})
    with pytest.raises(events.InvalidEvent, match="unknown field"):
        events.validate(good | {"modelVersion": "1"})


# --- Elasticsearch: retention and templates ---------------------------------------------------------

def test_templates_follow_the_node_count_retention_and_event_schema():
    one = elasticsearch.desired_configuration(nodes=1, retention_days=3)
    three = elasticsearch.desired_configuration(nodes=3, retention_days=14)
    policy = one["lifecycle_policies"][elasticsearch.RETENTION_POLICY]["policy"]["phases"]
    assert policy["delete"] == {"min_age": "3d", "actions": {"delete": {}}}
    for name, template in one["index_templates"].items():
        index = template["template"]["settings"]["index"]
        assert index == {"number_of_shards": "1", "number_of_replicas": "0",
                         "lifecycle": {"name": elasticsearch.RETENTION_POLICY}}, name
        assert three["index_templates"][name]["template"]["settings"]["index"]["number_of_replicas"] == "1"
    logs = one["index_templates"]["cd4ml-logs"]["template"]["mappings"]["properties"]["kubernetes"]["properties"]
    assert logs["labels"] == {"type": "flattened"} and logs["annotations"] == {"type": "flattened"}
    mapped = one["index_templates"]["cd4ml-events"]["template"]["mappings"]["properties"]
    assert mapped == {f.name: {"type": f.es_type} for f in events.FIELDS}
    assert one["index_templates"]["cd4ml-events"]["index_patterns"] == ["cd4ml-events-*"]


def test_the_stack_retention_reaches_the_job():
    desired = desired_of(platform_for(logRetentionDays=2).services["elasticsearch"])
    assert desired["lifecycle_policies"]["cd4ml-retention"]["policy"]["phases"]["delete"]["min_age"] == "2d"


@pytest.fixture
def es():
    stand_in = ElasticsearchStandIn({ADMIN[0]: ADMIN[1]}, Security({}, {ADMIN[0]: ("superuser",)})).start()
    yield stand_in
    stand_in.stop()


def test_elasticsearch_configure_creates_then_changes_nothing(es):
    desired = desired_of(platform_for().services["elasticsearch"])
    api = JsonApi(es.url, *ADMIN)
    first = configure_es.configure(api, desired, health_timeout=5)
    assert [(o.what, o.id, o.action) for o in first] == [
        ("lifecycle policy", "cd4ml-retention", "created"),
        ("index template", "cd4ml-events", "created"), ("index template", "cd4ml-logs", "created")]
    writes = list(es.writes)
    second = configure_es.configure(api, desired, health_timeout=5)
    assert {o.action for o in second} == {"unchanged"} and es.writes == writes
    changed = desired_of(platform_for(logRetentionDays=30).services["elasticsearch"])
    third = configure_es.configure(api, changed, health_timeout=5)
    assert [o.action for o in third] == ["updated", "unchanged", "unchanged"]


def test_elasticsearch_configure_failures_say_what_and_why(es):
    desired = desired_of(platform_for().services["elasticsearch"])
    with pytest.raises(ApiError, match="HTTP 401.*elasticsearch-user-admin Secret"):
        configure_es.configure(JsonApi(es.url, ADMIN[0], "wrong"), desired, health_timeout=0.3)
    es.status = "red"
    with pytest.raises(ApiError, match="green or yellow.*last seen: HTTP 200"):
        configure_es.configure(JsonApi(es.url, *ADMIN), desired, health_timeout=0.5)
    assert es.writes == []


# --- Kibana: data views -------------------------------------------------------------------------------

@pytest.fixture
def kibana(es):
    stand_in = KibanaStandIn(Connection(es.url, *ADMIN), users={ADMIN[0]: ADMIN[1]}).start()
    yield stand_in
    stand_in.stop()


def test_kibana_configure_creates_data_views_and_the_default_once(kibana):
    desired = desired_of(platform_for().services["kibana"])
    api = JsonApi(kibana.url, *ADMIN)
    outcomes = configure_kibana.configure(api, desired, health_timeout=5)
    assert [(o.id, o.action) for o in outcomes] == [
        ("cd4ml-events", "created"), ("cd4ml-logs", "created"), ("cd4ml-events", "updated")]
    assert kibana.data_views["cd4ml-events"]["title"] == "cd4ml-events-*"
    assert kibana.data_views["cd4ml-events"]["timeFieldName"] == "@timestamp"
    assert kibana.default_view == "cd4ml-events"
    writes = list(kibana.writes)
    assert {o.action for o in configure_kibana.configure(api, desired, health_timeout=5)} == {"unchanged"}
    assert kibana.writes == writes
    kibana.data_views["cd4ml-logs"]["title"] = "logs-*"  # edited by hand
    outcomes = configure_kibana.configure(api, desired, health_timeout=5)
    assert ("cd4ml-logs", "updated") in [(o.id, o.action) for o in outcomes]
    assert kibana.data_views["cd4ml-logs"]["title"] == "cd4ml-logs-*"


def test_a_busy_kibana_with_a_degraded_plugin_is_configured_and_passes_its_check(kibana):
    """Kibana's overall level is the worst plugin's and the task manager goes `degraded` on its own on a
    busy laptop while answering 200 (status.ts, get_summary_status.ts): the kit gates on what it needs,
    core.elasticsearch and core.savedObjects. Waiting for overall 'available' failed `up` here."""
    from infra.smoke.checks import kibana as kibana_checks
    from infra.smoke.core import SmokeContext, Target

    kibana.plugin_levels["taskManager"] = "degraded"
    desired = desired_of(platform_for().services["kibana"])
    outcomes = configure_kibana.configure(JsonApi(kibana.url, *ADMIN), desired, health_timeout=2)
    assert {o.action for o in outcomes} == {"created", "updated"}
    context = SmokeContext(platform=None, targets={"kibana": Target("kibana", kibana.url, *ADMIN)}, timeout=2)
    detail = kibana_checks.status(context)
    assert "overall 'degraded'" in detail and "saved objects ready" in detail


def test_kibanas_console_carries_elasticsearchs_status_in_a_header():
    """Console answers 200 and puts Elasticsearch's status in x-console-proxy-status-code, running the
    request as the caller (create_handler.ts l.41-51, l.135-176): a participant searching another's events
    gets a 200 with Elasticsearch's 403 inside, which the `wire.kibana-elasticsearch` check reads."""
    role = {"cd4ml_tenant_p01": {"indices": [{"names": ["cd4ml-events-p01-*"], "privileges": ["read"]}]}}
    es = ElasticsearchStandIn({"p01": "pw"}, Security(role, {"p01": ("cd4ml_tenant_p01",)})).start()
    kibana = KibanaStandIn(Connection(es.url, "kibana-association", "x"), users={"p01": "pw"}).start()
    try:
        with foreign_calls():  # trying the stand-ins: the kit never searches another participant's events
            answer = requests.post(f"{kibana.url}/api/console/proxy", json={}, auth=("p01", "pw"), timeout=5,
                                   params={"path": "/cd4ml-events-p02-2026.12.07/_search", "method": "POST"},
                                   headers={"kbn-xsrf": "t"})
        assert answer.status_code == 200
        assert answer.headers["x-console-proxy-status-code"] == "403"
        assert answer.json()["error"]["type"] == "security_exception"
    finally:
        kibana.stop()
        es.stop()


def test_kibana_configure_with_a_wrong_password_names_the_secret(kibana):
    desired = desired_of(platform_for().services["kibana"])
    with pytest.raises(ApiError, match="HTTP 401.*elasticsearch-user-admin Secret"):
        configure_kibana.configure(JsonApi(kibana.url, ADMIN[0], "wrong"), desired, health_timeout=5)


# --- Grafana: the dashboard as code -------------------------------------------------------------------

def dashboard() -> dict:
    configmap = next(o for o in platform_for().services["grafana"].objects if o["kind"] == "ConfigMap")
    return json.loads(configmap["data"]["model-monitoring.json"])


def fields_used(board: dict) -> set[str]:
    used = set()
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            used |= {m["field"] for m in target.get("metrics", []) if "field" in m}
            used |= {b["field"] for b in target.get("bucketAggs", []) if "field" in b}
            used |= set(re.findall(r"([A-Za-z_@][\w.]*):", target.get("query", "")))
            used.add(target.get("timeField", "@timestamp"))
    used |= {json.loads(v["query"])["field"] for v in board["templating"]["list"] if v["type"] == "query"}
    return used


def in_schema(field: str) -> bool:
    """A field of the events, or one input's value in a per-input object of them (explanation.bmi)."""
    name, dot, _ = field.partition(".")
    return field in events.FIELD_NAMES or bool(dot) and any(f.name == name and f.values_type for f in events.FIELDS)


def test_dashboard_queries_only_fields_the_events_carry_through_provisioned_datasources():
    board = dashboard()
    assert board["uid"] == grafana.MODEL_DASHBOARD_UID
    unknown = {field for field in fields_used(board) if not in_schema(field)}
    assert not unknown, f"the dashboard queries fields no model event has: {unknown}"
    sources = {p["datasource"]["uid"] for p in board["panels"]}
    sources |= {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]}
    sources |= {v["datasource"]["uid"] for v in board["templating"]["list"] if "datasource" in v}
    assert sources <= set(grafana.DATASOURCES)


def test_dashboard_shows_what_the_issue_asks_for():
    board = dashboard()
    titles = " | ".join(p["title"].lower() for p in board["panels"])
    for wanted in ("predictions per minute", "latency percentiles", "distribution", "errors"):
        assert wanted in titles
    by_version = [p for p in board["panels"]
                  if any(b.get("field") == "model_version" for t in p["targets"] for b in t["bucketAggs"])]
    assert len(by_version) >= 3
    assert {v["name"] for v in board["templating"]["list"]} == {"tenant", "environment", "model_version", "input"}
    percentiles = [m for p in board["panels"] for t in p["targets"] for m in t["metrics"] if m["type"] == "percentiles"]
    assert percentiles and percentiles[0]["field"] == "latency_ms"


def test_the_model_in_the_wild_panels_read_drift_explanations_and_feedback():
    """Input drift per input by model version, the deck's table of average explanations per input and
    minute, live error from feedback by model version; every query one kind of event; the inputs are the
    example model's, in the variable and the table alike."""
    from test_model_in_the_wild import example_split

    board = dashboard()
    panels = {p["id"]: p for p in board["panels"]}
    kinds = {p["id"]: t["query"].split(" AND ")[0] for p in board["panels"] for t in p["targets"]}
    assert set(kinds.values()) == {"kind:prediction", "kind:feedback"} and kinds[8] == "kind:feedback"
    drift = panels[6]["targets"][0]
    assert panels[6]["repeat"] == "input" and drift["metrics"][0]["field"] == "input_drift.$input"
    assert [b["field"] for b in drift["bucketAggs"]] == ["model_version", "@timestamp"]
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "input"]
    inputs = variable["query"].split(",")
    assert [m["field"] for m in panels[7]["targets"][0]["metrics"]] == [f"explanation.{i}" for i in inputs]
    assert panels[8]["targets"][0]["metrics"][0]["field"] == "abs_error"
    # The datasource answers a series per metric: joined on time into one table (Grafana's joinByField).
    assert panels[7]["transformations"] == [{"id": "joinByField", "options": {"byField": "Time", "mode": "outer"}}]
    assert inputs == example_split().features


def test_dashboard_links_open_mlflow_and_kibana_where_people_forward_them():
    links = {link["title"]: link["url"] for link in dashboard()["links"]}
    assert links["MLflow"] == f"http://localhost:{LOCAL_PORTS['mlflow']}"
    assert links["Kibana: model events"].startswith(f"http://localhost:{LOCAL_PORTS['kibana']}/app/discover")
    assert "dataViewId:cd4ml-events" in links["Kibana: model events"]
    assert links["Kibana: feedback"].endswith("query:(language:kuery,query:'kind:feedback'))"
                                              "&_g=(time:(from:now-24h,to:now))")
    from infra.platform.kibana import discover_path

    assert discover_path("v", "it's!") == "/app/discover#/?_a=(dataSource:(dataViewId:v,type:dataView),"\
                                          "query:(language:kuery,query:'it!'s!!'))"
    without_kibana = platform_for(services=["grafana", "elasticsearch", "mlflow"])
    configmap = next(o for o in without_kibana.services["grafana"].objects if o["kind"] == "ConfigMap")
    assert [link["title"] for link in json.loads(configmap["data"]["model-monitoring.json"])["links"]] == ["MLflow"]


# --- cd4ml plan shows it -----------------------------------------------------------------------------

def test_plan_shows_the_wired_logging_and_monitoring(tmp_path: Path):
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "platform.json").read_text())
    es_edge = next(e for e in document["wiring"] if (e["from"], e["to"]) == ("grafana", "elasticsearch"))
    values = yaml.safe_load((tmp_path / "releases" / "cd4ml-monitoring__grafana.yaml").read_text())["values"]
    sources = values["datasources"]["datasources.yaml"]["datasources"]
    assert {s["url"] for s in sources} == {es_edge["url"]}
    assert values["dashboardsConfigMaps"] == {"cd4ml": "grafana-dashboards-cd4ml"}
    provider = values["dashboardProviders"]["dashboardproviders.yaml"]["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/cd4ml"
    assert (tmp_path / "objects" / "cd4ml-monitoring__configmap__grafana-dashboards-cd4ml.yaml").exists()
    assert values["grafana.ini"]["auth.anonymous"]["enabled"] is False
    jobs = sorted(p.name.split("__")[2].rsplit("-", 1)[0] for p in (tmp_path / "objects").glob("*__job__*"))
    assert jobs == ["elasticsearch-configure", "gitea-configure", "gocd-configure", "kibana-configure",
                    "mlflow-configure"]
    services = {s["name"]: s for s in document["services"]}
    assert services["elasticsearch"]["settings"]["replicas"] == 0
    assert services["elasticsearch"]["settings"]["retention_days"] == 3  # the local stack's laptop setting
    assert services["kibana"]["settings"]["default_data_view"] == "cd4ml-events"


def test_each_elasticsearch_login_may_do_its_services_job_and_not_rewrite_the_platform():
    """Least privilege, through the stand-in's authorization (tests/standins/es_security.py, privileges
    as tests/contracts/elasticsearch.yaml cites them): Fluentd's login writes daily indices of both
    families and cannot touch the templates or the retention the configure Job installs; Grafana's
    reads and cannot write."""
    from smoke_fixtures import PASSWORDS, kit_security

    es = ElasticsearchStandIn(dict(PASSWORDS), kit_security()).start()
    try:
        fluentd, grafana = ("fluentd", PASSWORDS["fluentd"]), ("grafana", PASSWORDS["grafana"])

        def bulk(auth, index):
            body = json.dumps({"index": {"_index": index}}) + "\n" + json.dumps({"message": "m"}) + "\n"
            answer = requests.post(f"{es.url}/_bulk", data=body, auth=auth, timeout=5,
                                   headers={"Content-Type": "application/x-ndjson"})
            return answer.status_code if answer.status_code != 200 else answer.json()["items"][0]["index"]["status"]

        assert bulk(fluentd, "cd4ml-logs-2026.12.07") == 201
        assert bulk(fluentd, "cd4ml-events-p01-2026.12.07") == 201
        with foreign_calls():  # not a call the kit makes: Grafana's login holds no write privilege anywhere
            assert bulk(grafana, "cd4ml-logs-2026.12.08") == 403  # so the request is refused whole
        with foreign_calls():  # what Fluentd's credentials could do if stolen, not a call the kit makes
            for path, body in (("/_index_template/cd4ml-events", {"index_patterns": ["x-*"]}),
                               ("/_ilm/policy/cd4ml-retention", {"policy": {"phases": {}}})):
                answer = requests.put(es.url + path, json=body, auth=fluentd, timeout=5)
                assert answer.status_code == 403, path
                assert answer.json()["error"]["type"] == "security_exception"
        search = requests.post(f"{es.url}/cd4ml-logs-*/_search", json={}, auth=grafana, timeout=5)
        assert search.json()["hits"]["total"]["value"] == 1
    finally:
        es.stop()


CONTAINERD_LINE = "2026-12-07T10:00:00.123456789Z stdout F prediction stdout of model 3 ok"
"""A container's line as containerd writes it (time, stream, tag, text), the text holding " stdout "."""


def test_container_lines_are_read_with_the_cri_parser_not_the_charts_regexp():
    """The chart's fallback expression (fluentd-0.6.0 values.yaml l.326) has a greedy time group, so a line
    whose text holds " stdout " is split at the last one; the `cri` parser splits on the first three
    spaces (parser_cri.rb l.43, text.split(/\\s/, 4)). Ruby's and Python's regexps agree on this one."""
    chart_expression = r"^(?<time>.+) (?<stream>stdout|stderr)( (.))? (?<log>.*)$".replace("(?<", "(?P<")
    assert re.match(chart_expression, CONTAINERD_LINE)["log"] == "of model 3 ok"  # the chart's reading
    assert CONTAINERD_LINE.split(" ", 3)[3] == "prediction stdout of model 3 ok"  # cri's

    sources = fluentd.tail_sources()
    assert re.search(r"<parse>\s*@type cri\s*</parse>", sources)
    assert f"refresh_interval {fluentd.TAIL_REFRESH_SECONDS}s" in sources
    assert fluentd.TAIL_REFRESH_SECONDS <= 10
    outputs = fluentd.file_configs(Endpoint("es", "ns", 9200))["04_outputs.conf"]
    # The version is pinned: asking it at start blocks Fluentd (and its /metrics) while ES is down.
    assert outputs.count("verify_es_version_at_startup false") == 2
    assert outputs.count("default_elasticsearch_version 8") == 2



def test_grafana_reaches_for_nothing_outside_keeps_its_logins_and_has_room_beyond_its_go_heap():
    """Grafana 13 installs ~19 default plugins in the background and checks for updates unless told
    not to (setting_plugins.go, setting.go; tests/contracts/grafana.yaml); the participants' logins live in
    its database, which an emptyDir lost on restart; GOMEMLIMIT is the whole limit (chart _pod.tpl)."""
    (release,) = platform_for().services["grafana"].releases
    ini = release.values["grafana.ini"]
    assert ini["plugins"] == {"preinstall_disabled": True, "public_key_retrieval_disabled": True}
    assert ini["analytics"]["check_for_updates"] is False and ini["analytics"]["check_for_plugin_updates"] is False
    assert release.values["persistence"]["enabled"] is True
    assert release.values["deploymentStrategy"] == {"type": "Recreate"}
    assert all(size.memory_limit_mi >= 512 for size in grafana.SIZES.values())
