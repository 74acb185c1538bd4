"""A participant's page as a person sees it: `cd4ml handout` for the shipped workshop stack, opened in
headless Chromium at A4 width and printed on A4 (tests/browser.py). The screenshot is kept in the test's
folder (its path is printed) for a person to look at."""

from __future__ import annotations

import os
import shutil

import browser
import pytest
from typer.testing import CliRunner

from infra.cli import stacks
from infra.cli.main import app
from infra.handout import ALL_PAGES

runner = CliRunner()
PASSWORDS = {"ada": "Ada0pw0generated0x1", "grace": "Grace0pw0generated0x2"}
A4_WIDTH_PX, A4_HEIGHT_PX = 794, 1123  # 210 x 297 mm at 96 dpi


@pytest.fixture(scope="module")
def handouts(tmp_path_factory):
    out = tmp_path_factory.mktemp("handouts")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stacks, "stack_outputs", lambda *args: {"participant_passwords": PASSWORDS})
        result = runner.invoke(app, ["handout", "--stack", "workshop", "--set", "participantNames=ada,grace",
                                     "--set", "participants=2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def page():
    if not browser.available():
        message = f"{browser.CHROMIUM} is missing: `make test` installs Debian's chromium"
        if os.environ.get("CD4ML_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    with browser.chromium() as tab:
        yield tab


def test_the_page_is_html_not_markdown_source(handouts):
    text = (handouts / "ada.html").read_text()
    assert "<table>" in text and "<pre>" in text  # the agents' variables stay a block
    assert '<a href="https://gocd.workshop.example.com/go">' in text
    assert "|---|" not in text and "**" not in text


def test_a_participant_sees_their_login_and_addresses_they_can_open(handouts, page, tmp_path):
    page.open((handouts / "ada.html").as_uri(), A4_WIDTH_PX, A4_HEIGHT_PX)
    shown = page.evaluate("document.body.innerText")
    assert "ada / Ada0pw0generated0x1" in shown
    assert "Grace0pw0generated0x2" not in shown and "grace" not in shown
    links = set(page.evaluate("[...document.querySelectorAll('a')].map(a => a.href)"))
    assert {"https://gocd.workshop.example.com/go", "https://mlflow.workshop.example.com/",
            "https://kibana.workshop.example.com/app/discover",
            "https://grafana.workshop.example.com/d/cd4ml-model-monitoring",
            "https://ada-staging.workshop.example.com/",
            "https://gitea.workshop.example.com/",
            "https://gitea.workshop.example.com/ada/diabetes-model.git"} <= links, links  # her ready repository
    assert "Clone your repository" in shown and "ada-diabetes-model already yours" in shown
    assert "GoCD already reads it" in shown
    # The shipped stack's certificate is self-signed: git would refuse it, so the page says how to clone.
    assert "git -c http.sslVerify=false clone" in shown and "curl -k -u ada https://ada-staging" in shown
    assert not [link for link in links if "localhost" in link]
    # Nothing runs off the right edge of an A4-wide window (long addresses wrap).
    assert page.evaluate("document.documentElement.scrollWidth") <= A4_WIDTH_PX
    shot = tmp_path / "ada.png"
    page.screenshot(shot)
    shutil.copy(shot, tmp_path.parent / "handout-ada.png")
    print(f"\n  screenshot: {shot}")


def test_printing_all_pages_gives_one_participant_per_sheet(handouts, page):
    page.open((handouts / ALL_PAGES).as_uri(), A4_WIDTH_PX, A4_HEIGHT_PX)
    shown = page.evaluate("document.body.innerText")
    assert shown.index("ada / Ada0pw0generated0x1") < shown.index("grace / Grace0pw0generated0x2")
    assert browser.pdf_pages(page.print_pdf()) == 2
