"""Fluentd and the log wires: an event sent to Fluentd's forward port must be found in
Elasticsearch, and through Kibana's and Grafana's query paths, within the deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from fluent import sender as fluent_sender

from infra import events
from infra.document import EdgeEntry
from infra.platform.apps import ENDPOINTS_CONFIGMAP
from infra.platform.elasticsearch import CONTAINER_LOG_FIELD, EVENT_INDEX_PREFIX, LOG_INDEX_PREFIX, WRITER_ROLE
from infra.platform.grafana import DATASOURCES
from infra.polling import Observation, WaitTimeout, poll_until
from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext
from infra.smoke.http import call, json_of

SMOKE_TENANT = "cd4ml-smoke"
"""The tenant smoke events are sent as: tag `cd4ml-smoke.prediction`, so Fluentd must route them to
the tenant's own indices — which is where the checks look for them."""
EVENTS = events.index_pattern(SMOKE_TENANT)
LOGS = f"{LOG_INDEX_PREFIX}-*"
EVENTS_DATASOURCE = next(uid for uid, (_, prefix) in DATASOURCES.items() if prefix == EVENT_INDEX_PREFIX)


def _forward_address(context: SmokeContext) -> tuple[str, int]:
    parsed = urlparse(context.target("fluentd").url)
    return parsed.hostname or "", parsed.port or 24224


def forward_port(context: SmokeContext) -> str:
    host, port = _forward_address(context)
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as failure:
        raise CheckFailed(Diagnosis("fluentd", f"tcp://{host}:{port}", "a TCP connection to the forward input",
                                    f"{type(failure).__name__}: {failure}",
                                    "Fluentd is down, or its Service does not expose the forward port 24224")) from None
    return f"accepting connections on {port}"


def _query(marker: str) -> dict:
    return {"query": {"match_phrase": {"event_id": marker}}}


def _feedback_query(marker: str) -> dict:
    return {"query": {"match_phrase": {"prediction_event_id": marker}}}


def _send_event(context: SmokeContext) -> str:
    """Exactly what a model service sends, under its tenant's tags (infra/events.py): a prediction with its
    inputs, their explanation and drift, then the feedback on it."""
    host, port = _forward_address(context)
    model = {"model_name": "cd4ml-smoke", "model_version": "0", "pipeline_label": "smoke", "environment": "smoke",
             "tenant": SMOKE_TENANT}
    prediction = events.prediction_event(**model, latency_ms=0.0, prediction=0.0, event_id=context.run_id,
                                         features={"x": 1.0}, explanation={"x": 0.5}, input_drift={"x": 0.0})
    feedback = events.feedback_event(**model, prediction_event_id=context.run_id, true_value=1.0, prediction=0.0,
                                     event_id=f"{context.run_id}-feedback")
    tenant, _, _ = events.tag(SMOKE_TENANT).partition(".")
    logger = fluent_sender.FluentSender(tenant, host=host, port=port, timeout=5)
    try:
        for event in (prediction, feedback):
            if not logger.emit(event["kind"], event):
                raise CheckFailed(Diagnosis("fluentd", f"tcp://{host}:{port}", "the events accepted",
                                            str(logger.last_error), "Fluentd is down or not listening for forward"))
    finally:
        logger.close()
    return context.run_id


def _hits(body: dict) -> int:
    total = body.get("hits", {}).get("total", 0)
    return total.get("value", 0) if isinstance(total, dict) else int(total)


def _found_in(context: SmokeContext, index: str, query: dict) -> Observation[list[dict]]:
    """One look for documents matching `query` in `index` (their sources): a missing index, a new daily
    index whose shard is not allocated yet (503, all shards failed) and a busy node (429) are all "not yet"."""
    response = call(context, context.target("elasticsearch"), "POST", f"/{index}/_search", expect="search results",
                    json=query, statuses=(200, 404, 429, 503))
    body = response.json() if response.status_code == 200 else {}
    hits = _hits(body)
    sources = [hit.get("_source", {}) for hit in body.get("hits", {}).get("hits", [])]
    return Observation(hits > 0, sources, f"HTTP {response.status_code}, {hits} hit(s) in {index}")


def _await(look, *, what: str, context: SmokeContext, diagnose: Callable[[WaitTimeout], Diagnosis]) -> Any:
    """Poll `look` against the check's deadline; on timeout fail with the diagnosis built from it."""
    try:
        return poll_until(look, what=what, timeout=context.timeout)
    except WaitTimeout as timeout:
        raise CheckFailed(diagnose(timeout)) from None


def event_reaches_elasticsearch(context: SmokeContext) -> str:
    es = context.target("elasticsearch")
    context.target("fluentd")
    marker = context.once("fluentd-event", lambda: _send_event(context))
    started = time.monotonic()

    edge = context.edge("fluentd", "elasticsearch")
    url, secret = (edge.url, edge.credentials_secret) if edge else ("?", "?")
    context.cleanups.append(lambda: context.post(es, f"/{EVENTS}/_delete_by_query", json=_query(marker)))
    context.cleanups.append(lambda: context.post(es, f"/{EVENTS}/_delete_by_query", json=_feedback_query(marker)))
    found = _await(lambda: _found_in(context, EVENTS, _query(marker)), what=f"event {marker} in {EVENTS}",
                   context=context,
           diagnose=lambda timeout: Diagnosis(
               "fluentd", f"{es.url}/{EVENTS}/_search", f"event {marker} indexed within {context.timeout:.0f}s",
               timeout.last_seen,
               f"Fluentd accepted the event but it never reached index {EVENTS}: check the Fluentd output's host, "
               f"which should be {url}, its credentials in {secret}, and that their role {WRITER_ROLE} may "
               f"auto_configure and index on {EVENT_INDEX_PREFIX}-* (Elasticsearch refuses such a document in a bulk "
               f"request that answers 200, and Fluentd retries it quietly: at its default log level nothing "
               f"shows)"))
    if not (found and found[0].get("explanation") and found[0].get("input_drift")):
        raise CheckFailed(Diagnosis(
            "fluentd", f"{es.url}/{EVENTS}/_search", "the prediction event with its explanation and input_drift",
            str(found[0] if found else found)[:200],
            "something between the sender and the index drops fields: a Fluentd filter, or the events template"))
    _await(lambda: _found_in(context, EVENTS, _feedback_query(marker)), what=f"the feedback on {marker} in {EVENTS}",
           context=context, diagnose=lambda timeout: Diagnosis(
               "fluentd", f"{es.url}/{EVENTS}/_search", f"the feedback event on {marker} indexed", timeout.last_seen,
               f"the prediction arrived but its feedback (tag {events.tag(SMOKE_TENANT, events.FEEDBACK)}) did not: "
               "Fluentd's match for the events must take every tag of a tenant, not only <tenant>.prediction"))
    return f"prediction (explained) and feedback found in {EVENTS} after {time.monotonic() - started:.1f}s"


def _wait_for_event_in_elasticsearch(context: SmokeContext) -> str:
    try:
        return context.once("event-indexed", lambda: event_reaches_elasticsearch(context))
    except CheckFailed as upstream:
        raise Skip(f"the event never reached Elasticsearch ({upstream.diagnosis.likely_cause[:80]}...)") from None


def event_through_kibana(context: SmokeContext) -> str:
    kibana = context.target("kibana")
    _wait_for_event_in_elasticsearch(context)
    marker = context.run_id

    def search(query: dict) -> Any:
        return call(context, kibana, "POST", "/api/console/proxy", expect="Elasticsearch results via Kibana",
                    params={"path": f"/{EVENTS}/_search", "method": "POST"}, json=query,
                    headers={"kbn-xsrf": "cd4ml-smoke"})

    def look() -> Observation[int]:
        response = search(_query(marker))
        # Kibana answers 200 and carries Elasticsearch's own status in this header (console proxy).
        es_status = response.headers.get("x-console-proxy-status-code", "200")
        if es_status != "200":
            raise CheckFailed(Diagnosis(
                "kibana", f"{kibana.url}/api/console/proxy", "Elasticsearch results via Kibana",
                f"Elasticsearch answered {es_status} through Kibana: {response.text[:160]}",
                "Kibana's console runs as the logged-in user: that login's Elasticsearch role lacks read on "
                f"{EVENTS}" if es_status in ("401", "403") else "Elasticsearch failed the search: read its log"))
        hits = _hits(json_of(response, kibana, "search results"))
        return Observation(hits > 0, hits, f"{hits} hit(s) through Kibana")

    def look_for_feedback() -> Observation[int]:
        response = search(_feedback_query(marker))
        hits = _hits(json_of(response, kibana, "search results")) \
            if response.headers.get("x-console-proxy-status-code", "200") == "200" else 0
        return Observation(hits > 0, hits, f"{hits} feedback hit(s) through Kibana")

    edge = context.edge("kibana", "elasticsearch")
    url = edge.url if edge else "?"
    _await(look, what=f"event {marker} through Kibana", context=context, diagnose=lambda timeout: Diagnosis(
        "kibana", f"{kibana.url}/api/console/proxy", "the event found through Kibana", timeout.last_seen,
        f"Kibana queries another Elasticsearch than {url} (its elasticsearchRef)"))
    _await(look_for_feedback, what=f"the feedback on {marker} through Kibana", context=context,
           diagnose=lambda timeout: Diagnosis(
               "kibana", f"{kibana.url}/api/console/proxy", "the feedback event found through Kibana",
               timeout.last_seen, "the prediction was visible, its feedback is not: read wire.fluentd-elasticsearch"))
    return "prediction and feedback visible through Kibana"


def _grafana_count(body: dict) -> float:
    total = 0.0
    for result in body.get("results", {}).values():
        for frame in result.get("frames", []):
            for column in frame.get("data", {}).get("values", [])[1:]:
                total += sum(v for v in column if isinstance(v, (int, float)))
    return total


def event_through_grafana(context: SmokeContext) -> str:
    grafana = context.target("grafana")
    _wait_for_event_in_elasticsearch(context)
    marker = context.run_id
    query = {
        "from": "now-1h", "to": "now",
        "queries": [{
            "refId": "A", "datasource": {"uid": EVENTS_DATASOURCE, "type": "elasticsearch"},
            "query": f'event_id:"{marker}"', "timeField": "@timestamp",
            "metrics": [{"id": "1", "type": "count"}],
            "bucketAggs": [{"id": "2", "type": "date_histogram", "field": "@timestamp",
                            "settings": {"interval": "auto"}}],
        }],
    }

    def look() -> Observation[float]:
        counts = []
        # The prediction, then its feedback (what the dashboard's live-error panel reads).
        for phrase in (f'event_id:"{marker}"', f'prediction_event_id:"{marker}"'):
            query["queries"][0]["query"] = phrase
            response = call(context, grafana, "POST", "/api/ds/query", expect="query results", json=query,
                            statuses=(200, 400, 500))
            if response.status_code != 200:
                return Observation(False, None, f"HTTP {response.status_code}: {response.text[:160]}")
            counts.append(_grafana_count(json_of(response, grafana, "query results")))
        return Observation(all(c > 0 for c in counts), counts,
                           f"counts {counts} (prediction, feedback) through datasource {EVENTS_DATASOURCE}")

    edge = context.edge("grafana", "elasticsearch")
    _await(look, what=f"event {marker} through Grafana", context=context, diagnose=lambda timeout: Diagnosis(
        "grafana", f"{grafana.url}/api/ds/query", f"the event counted by datasource {EVENTS_DATASOURCE}",
        timeout.last_seen,
        f"Grafana's datasource does not reach {edge.url if edge else '?'} with the user in "
        f"{edge.credentials_secret if edge else '?'}, or its index pattern is not {EVENTS}"))
    return "prediction and feedback counted through Grafana"


def container_logs(context: SmokeContext) -> str:
    """A probe pod in an application namespace prints a unique line; it must reach cd4ml-logs-*."""
    es = context.target("elasticsearch")
    context.target("fluentd")
    app_edges = context.app_edges("fluentd")
    if not app_edges:
        raise Skip("no application namespace ships to Fluentd")
    namespace = app_edges[0].consumer_namespace
    marker = f"{context.run_id} container log line"
    name = f"{context.run_id}-logs"
    query = {"query": {"match_phrase": {CONTAINER_LOG_FIELD: marker}}}

    def line_indexed() -> None:
        _await(lambda: _found_in(context, LOGS, query), what=f"the probe's log line in {LOGS}", context=context,
               diagnose=lambda timeout: Diagnosis(
                   "fluentd", f"{es.url}/{LOGS}/_search", f"the line {marker!r} indexed", timeout.last_seen,
                   "Fluentd does not tail this node's /var/log/containers, or its container-log output "
                   f"does not write to {LOGS}"))

    # The pod stays until its line is indexed: Fluentd finds its log file only on its next scan.
    try:
        context.cluster.run_probe(namespace, name, timeout=max(context.timeout, 120),
                                  labels=app_edges[0].consumer_pods, keep_until=line_indexed, container={
            "image": context.probe_image, "command": ["python", "-c", f"print({marker!r})"]})
    except CheckFailed:
        raise
    except Exception as failure:  # noqa: BLE001 - probe failures are the finding
        raise CheckFailed(Diagnosis("fluentd", f"probe pod {namespace}/{name}", "the probe pod to run",
                                    str(failure)[:300], "the namespace's quota or the image pull")) from None
    context.cleanups.append(lambda: context.post(es, f"/{LOGS}/_delete_by_query", json=query))
    return f"probe log line found in {LOGS}"


FORWARD_PROBE = """
import json, os, socket, time
with socket.create_connection((os.environ["FLUENTD_HOST"], int(os.environ["FLUENTD_PORT"])), timeout=10) as s:
    s.sendall(json.dumps([os.environ["SMOKE_TAG"], int(time.time()),
                          {"event_id": os.environ["SMOKE_ID"], "message": "cd4ml smoke probe"}]).encode())
print("SENT " + os.environ["SMOKE_ID"])
"""
"""Sends one event the way an app's fluent-logger does (forward protocol, here its JSON form) using
only the environment the consumer is given, so the probe proves that environment, not ours."""


def _probe_forward(context: SmokeContext, edge: EdgeEntry, marker: str, env: list[dict], env_from: list[dict],
                   service_account: str | None, consumer: str) -> None:
    context.target("elasticsearch")
    namespace = edge.consumer_namespace
    name = f"{context.run_id}-fwd-{namespace.rsplit('-', 1)[-1]}"[:63]
    where = f"probe pod {namespace}/{name}"
    try:
        # Standing in for the agents (their ServiceAccount): marked as the plugin marks their jobs.
        labels, annotations = context.agent_marks if service_account == context.sample_tenant.service_account \
            else ({}, {})
        context.cluster.run_probe(namespace, name, timeout=max(context.timeout, 120), service_account=service_account,
                                  labels={**(edge.consumer_pods or {}), **labels}, annotations=annotations,
                                  container={"image": context.probe_image, "command": ["python", "-c", FORWARD_PROBE],
                                             "env": [{"name": "SMOKE_ID", "value": marker},
                                                     {"name": "SMOKE_TAG", "value": f"{SMOKE_TENANT}.probe"}, *env],
                                             **({"envFrom": env_from} if env_from else {})})
    except Exception as failure:  # noqa: BLE001 - probe failures are the finding
        raise CheckFailed(Diagnosis(
            "fluentd", where, f"{consumer} to send an event to Fluentd's forward port", str(failure)[:300],
            f"{consumer}'s FLUENTD_HOST/FLUENTD_PORT do not lead to Fluentd's forward Service")) from None
    _await(lambda: _found_in(context, EVENTS, _query(marker)), what=f"event {marker} in {EVENTS}", context=context,
           diagnose=lambda timeout: Diagnosis(
               "fluentd", where, f"the event from {consumer} indexed in {EVENTS}", timeout.last_seen,
               f"Fluentd accepted {consumer}'s event but did not ship it to Elasticsearch"))
    es = context.target("elasticsearch")
    context.cleanups.append(lambda: context.post(es, f"/{EVENTS}/_delete_by_query", json=_query(marker)))


def agents_to_fluentd(context: SmokeContext) -> str:
    edge = context.edge(context.sample_tenant.agents_node, "fluentd")
    if edge is None:
        raise Skip("the platform has no gocd-agents -> fluentd edge")
    env = [{"name": name, "value": value} for name, value in edge.variables.items()]
    _probe_forward(context, edge, f"{context.run_id}-agents", env, [],
                   context.sample_tenant.service_account, "the GoCD agents")
    return "event from the agents' namespace indexed"


def apps_to_fluentd(context: SmokeContext) -> str:
    edges = context.app_edges("fluentd")
    if not edges:
        raise Skip("no application environment logs to Fluentd")
    for edge in edges:
        _probe_forward(context, edge, f"{context.run_id}-{edge.consumer.split(':', 1)[1]}", [],
                       [{"configMapRef": {"name": ENDPOINTS_CONFIGMAP}}], None,
                       f"a model service in {edge.consumer_namespace} (ConfigMap {ENDPOINTS_CONFIGMAP})")
    return f"events from {len(edges)} application namespace(s) indexed"


CHECKS = (
    Check("fluentd.forward", "fluentd", forward_port),
    Check("wire.fluentd-elasticsearch", "fluentd", lambda context: context.once(
        "event-indexed", lambda: event_reaches_elasticsearch(context))),
    Check("wire.kibana-elasticsearch", "kibana", event_through_kibana),
    Check("wire.grafana-elasticsearch", "grafana", event_through_grafana),
    Check("wire.container-logs-elasticsearch", "fluentd", container_logs, needs_cluster=True),
    Check("wire.gocd-agents-fluentd", "fluentd", agents_to_fluentd, needs_cluster=True),
    Check("wire.app-fluentd", "fluentd", apps_to_fluentd, needs_cluster=True),
)
