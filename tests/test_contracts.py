"""The contract ledger itself (tests/contracts): every entry carries its evidence, and the check that
fails a run on an unledgered call would have caught the GoCD health call of issue #14."""

from __future__ import annotations

import pytest
import requests
from contracts.ledger import ledgers, unledgered
from gocd_api import GoCDApiStandIn
from http_standin import RECORDED, Call

from infra.upstream.gocd import HEALTH

SERVICES = ("elasticsearch", "gitea", "gocd", "grafana", "kibana")


def test_a_ledger_per_service_the_kit_cannot_run_here_every_entry_with_evidence():
    found = ledgers()
    assert set(found) == set(SERVICES)
    for service, ledger in found.items():
        assert ledger.repository and ledger.version and ledger.source, service
        assert ledger.entries, service
        for entry in ledger.entries:
            assert entry.evidence, f"{service}: {entry.method} {entry.path}"
            for evidence in entry.evidence:
                assert evidence.file and evidence.lines and evidence.says, f"{service}: {entry.method} {entry.path}"
            assert entry.answers, f"{service}: {entry.method} {entry.path} names no answer the kit handles"


def test_gocds_health_with_the_accept_header_the_kit_once_sent_is_not_in_the_ledger():
    """`Accept: application/json` (what infra/configure/api.py sent before #14) is refused by GoCD 26.1.0's
    router; the ledger names only the media type the route is registered for."""
    misread = ("gocd", "GET", f"/go{HEALTH.path}", (("Accept", "application/json"),))
    right = ("gocd", "GET", f"/go{HEALTH.path}", (("Accept", HEALTH.accept),))
    assert unledgered([misread]) == [f"gocd: GET /go{HEALTH.path} {{'Accept': 'application/json'}}"]
    assert unledgered([right]) == []


@pytest.mark.parametrize("header", ["Accept", "Content-Type", "If-Match"])
def test_a_call_differs_from_its_entry_by_any_contract_header(header):
    path = "/go/api/admin/config_repos/churn-model"
    headers = {"Accept": "application/vnd.go.cd.v4+json", "Content-Type": "application/json", "If-Match": '"e"'}
    assert unledgered([("gocd", "PUT", path, tuple(headers.items()))]) == []
    changed = {**headers, header: "text/plain"} if header != "If-Match" else {
        k: v for k, v in headers.items() if k != header}
    assert unledgered([("gocd", "PUT", path, tuple(changed.items()))]) != []


def test_stand_ins_record_each_call_with_its_contract_headers():
    gocd = GoCDApiStandIn().start()
    try:
        requests.get(f"{gocd.url}/go{HEALTH.path}", headers={"Accept": HEALTH.accept, "X-Other": "1"}, timeout=5)
    finally:
        gocd.stop()
    assert Call("gocd", "GET", f"/go{HEALTH.path}", (("Accept", HEALTH.accept),)) in RECORDED
