"""The watch-floor console in headless Chromium (Debian's /usr/bin/chromium via playwright).

A ticket raised through the API appears in the live queue without a reload; an operator
acknowledges it and sees the state change; a viewer gets no action buttons; in storm mode
a banner shows and the queue rolls up per grid.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from gridwatch.contracts import Alert, Category, Severity, incident_key
from simulators.city import generate_city
from streams.alerts import StormChange, storm_alert
from streams.rain_scoring import RainParams
from tickets.api import create_app
from tickets.config import TicketsConfig
from tickets.service import TicketService

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
TOKENS = {"viewer": "e2e-viewer", "operator": "e2e-operator", "admin": "e2e-admin"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, TicketService]]:
    db = f"sqlite:///{tmp_path / 'tickets.db'}"
    cfg = TicketsConfig.model_validate(
        {
            "db_url": db,
            "var_dir": str(tmp_path / "var"),
            "sse_poll_s": 0.2,
            "tokens": [{"name": f"e2e-{r}", "role": r, "token": t} for r, t in TOKENS.items()],
        }
    )
    service = TicketService.from_url(db, generate_city(42, "small").registry(), cfg)
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", service
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def base_url(live: tuple[str, TicketService]) -> str:
    return live[0]


@pytest.fixture
def near_miss_service(live: tuple[str, TicketService]) -> TicketService:
    return live[1]


@pytest.fixture
def browser_page() -> Iterator[Page]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # CSP violations and failed loads show up as console errors
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page
        browser.close()
        # the bad-token check provokes the one expected failed load (401)
        unexpected = [e for e in errors if "status of 401" not in e]
        assert unexpected == [], f"JavaScript errors: {unexpected}"


def post_alert(base_url: str) -> str:
    grid = "D01-S02-G03"
    now = datetime.now(UTC)
    alert = Alert(
        alert_id="e2e-1",
        incident_key=incident_key(grid, Category.WATERLOGGING, "site-e2e"),
        kind="observed",
        category=Category.WATERLOGGING,
        severity=Severity.MAJOR,
        grid_id=grid,
        district_id="D01",
        site="site-e2e",
        ts=now,
        why="water 18 cm at the underpass",
        evidence={
            "readings": [
                {"ts": (now - timedelta(minutes=6 - i)).isoformat(), "value": i * 3.0}
                for i in range(6)
            ],
            "forecast": [
                {"horizon_min": h, "q10": 14.0 + h / 10, "q50": 16.0 + h / 5, "q90": 19.0 + h / 3}
                for h in (10, 20, 30)
            ],
        },
    )
    r = httpx.post(
        f"{base_url}/api/v1/alerts",
        json=json.loads(alert.model_dump_json()),
        headers={"Authorization": f"Bearer {TOKENS['admin']}"},
        timeout=10,
    )
    r.raise_for_status()
    return str(r.json()["ticket_id"])


def test_console_live_queue_and_acknowledge(
    base_url: str, browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    page.goto(f"{base_url}/console/#token={TOKENS['operator']}")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#live")).not_to_have_class("live off")  # stream connected
    expect(page.locator("#map path")).to_have_count(45)
    assert page.url.endswith("/console/")  # the token left the address bar
    csp = httpx.get(f"{base_url}/console/").headers["content-security-policy"]
    assert "default-src 'self'" in csp

    tid = post_alert(base_url)  # raised through the API while the page is open
    row = page.locator(f'#queue tr[data-id="{tid}"]')
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_have_attribute("data-state", "open")
    expect(page.locator('#map path[data-grid="D01-S02-G03"]')).to_have_class("c2")
    expect(page.locator('[data-kpi="kpi_open"] .v')).to_have_text("1")

    row.click()
    expect(page.locator("#d-id")).to_have_text(tid)
    expect(page.locator("#spark polyline.obs")).to_have_count(1)
    expect(page.locator("#spark polyline.fc")).to_have_count(1)
    expect(page.locator("#spark polygon.band")).to_have_count(1)
    page.locator('button[data-action="acknowledge"]').click()
    expect(page.locator("#d-state")).to_have_attribute("data-state", "acknowledged")
    expect(row).to_have_attribute("data-state", "acknowledged")
    expect(page.locator("#d-audit li")).to_have_count(2)
    shot = tmp_path / "console.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # clicking another grid on the map filters the queue; clicking again clears it
    page.locator('#map path[data-grid="D01-S01-G01"]').click()
    expect(page.locator("#queue tbody tr[data-id]")).to_have_count(0)
    page.locator('#map path[data-grid="D01-S01-G01"]').click()
    expect(row).to_be_visible()

    # English fallback toggle
    page.locator("#lang").click()
    expect(page.locator("#queue-h")).to_have_text("Live queue")

    # resolving closes the ticket: it leaves the queue and feeds the precision table
    page.locator('button[data-action="resolve"]').click()
    expect(page.locator("#d-state")).to_have_attribute("data-state", "resolved")
    expect(row).to_have_count(0)
    expect(page.locator('#prec-table tr[data-by="by_rule"] td').nth(2)).to_have_text("100%")


def test_console_viewer_has_no_actions_and_bad_token_is_refused(
    base_url: str, browser_page: Page, near_miss_service: TicketService
) -> None:
    page = browser_page
    tid = post_alert(base_url)
    near_miss_service.record_near_miss(
        incident_key="D01-S01-G01:waterlogging",
        grid_id="D01-S01-G01",
        category="waterlogging",
        ts=datetime.now(UTC),
        why_not="p=0.38 below 0.5",
    )
    page.goto(f"{base_url}/console/#token={TOKENS['viewer']}")
    expect(page.locator("#near-list li")).to_have_count(1)
    expect(page.locator("#near-list li")).to_contain_text("p=0.38 below 0.5")
    page.locator(f'#queue tr[data-id="{tid}"]').click()
    expect(page.locator("#d-id")).to_have_text(tid)
    expect(page.locator("#d-actions button")).to_have_count(0)

    page.evaluate("sessionStorage.clear()")
    page.goto("about:blank")  # a hash-only change would not reload the console
    page.goto(f"{base_url}/console/#token=wrong")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-error")).not_to_be_empty()


def post_storm(base_url: str, on: bool) -> dict[str, Any]:
    """The rain job's storm alert for D01 (started 20 min ago; ended 2 min ago), posted as
    the ticketing job would hand it to the store."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    start = now_ms - 20 * 60_000
    change = (
        StormChange("D01", True, start + 5 * 60_000, start, None, 0.64, 0.64)
        if on
        else StormChange("D01", False, now_ms, start, now_ms - 2 * 60_000, 0.1, 0.7)
    )
    r = httpx.post(
        f"{base_url}/api/v1/alerts",
        json=json.loads(storm_alert(change, RainParams()).model_dump_json()),
        headers={"Authorization": f"Bearer {TOKENS['admin']}"},
        timeout=10,
    )
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def test_console_storm_banner_and_queue_rolled_up_per_grid(
    live: tuple[str, TicketService], browser_page: Page
) -> None:
    base_url, service = live
    page = browser_page
    placed = {"D01-S01-G01": 3, "D01-S02-G03": 2}
    tickets: dict[str, list[str]] = {g: [] for g in placed}
    for grid, n in placed.items():
        for i in range(n):
            site = f"st-{grid[-3:]}-{i}"
            alert = Alert(
                alert_id=f"storm-e2e-{grid}-{i}",
                incident_key=incident_key(grid, Category.WATERLOGGING, site),
                kind="observed",
                category=Category.WATERLOGGING,
                severity=Severity.MAJOR if i == 0 else Severity.MINOR,
                grid_id=grid,
                district_id="D01",
                site=site,
                ts=datetime.now(UTC),
                why="water over the kerb",
            )
            tickets[grid].append(str(service.raise_alert(alert).ticket_id))
    assert post_storm(base_url, on=True)["action"] == "storm_start"

    page.goto(f"{base_url}/console/#token={TOKENS['viewer']}")
    banner = page.locator("#storm-banner")
    expect(banner).to_be_visible()
    expect(banner.locator('[data-district="D01"]')).to_have_count(1)
    groups = page.locator("#queue tr.grp")
    expect(groups).to_have_count(2)  # one row per grid, its tickets folded in
    expect(page.locator("#queue tr[data-id]")).to_have_count(0)
    g01 = page.locator('#queue tr[data-grid-row="D01-S01-G01"]')
    expect(g01).to_have_attribute("data-count", "3")
    expect(g01).to_contain_text("3")
    g01.click()
    expect(page.locator("#queue tr.in-grp")).to_have_count(3)
    first = tickets["D01-S01-G01"][0]
    page.locator(f'#queue tr[data-id="{first}"]').click()
    expect(page.locator("#d-id")).to_have_text(first)
    g01.click()
    expect(page.locator("#queue tr.in-grp")).to_have_count(0)
    page.locator("#lang").click()  # the banner speaks English too
    expect(banner).to_contain_text("Storm mode · D01")

    # the storm ends: the next change on the floor brings back the flat queue
    assert post_storm(base_url, on=False)["action"] == "storm_end"
    service.raise_alert(
        Alert(
            alert_id="storm-e2e-after",
            incident_key=incident_key("D01-S01-G02", Category.WATERLOGGING, "after"),
            kind="observed",
            category=Category.WATERLOGGING,
            severity=Severity.MINOR,
            grid_id="D01-S01-G02",
            district_id="D01",
            site="after",
            ts=datetime.now(UTC),
        )
    )
    expect(page.locator("#queue tr[data-id]")).to_have_count(6, timeout=15_000)
    expect(groups).to_have_count(0)
    expect(banner).to_be_hidden()
