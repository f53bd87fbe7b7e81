"""The attack and bad-input sweep (``gridwatch drill abuse``).

Against a running local stack (Mosquitto, Kafka), starts its own ingest bridge and
tickets API as child processes, on a private Kafka topic prefix, MQTT share group and
ticket database, then for ``seconds``:

* publishes every bad-input class of ``ingest.badinput`` and ``simulators.faults`` at
  rate, floods one device past its rate limit and repeats readings, interleaved with
  valid readings from honest devices (``gridwatch.abuse_plan``, ``gridwatch.abuse_mqtt``);
* commits the ACL violations: publishing to another device's topic, under its own id
  but another kind, or outside the topic root, subscribing where a device may not read
  (joining the bridge's shared subscription too), logging in anonymously, with a wrong
  password, as somebody else;
* calls every route of the tickets API with every caller and malformed input
  (``gridwatch.abuse_api``).

Then reads the dead-letter and readings topics and checks every class got its reason,
every violation was refused with nothing reaching Kafka, no valid reading was lost, and
nothing crashed (no 5xx, no process death, no traceback in the children's logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from gridwatch.abuse_api import ApiCaller, ApiSweep, run_api_sweep
from gridwatch.abuse_mqtt import HIJACK_SEQ0, MqttSweep, Probe, run_hijack, run_mqtt_sweep
from gridwatch.abuse_plan import ATTACK_SEQ0, BRIDGE, READING, Pools, make_pools
from gridwatch.contracts import KINDS, DeadLetter, ReadingBatch, parse_record
from gridwatch.credentials import device_password
from gridwatch.errors import StackError
from gridwatch.kafka import ensure_topics, read_topic, readings_topic
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from gridwatch.stack import Stack, free_port

HOLDS = (
    "Every bad input is dead-lettered with its own reason or refused by the broker, every "
    "ACL violation is refused with nothing of it reaching Kafka, every API call gets the "
    "status its caller and input deserve, no valid reading is lost, and nothing crashes "
    "(no 5xx, no process death, no traceback)."
)


def run_abuse(
    settings: Settings,
    *,
    seconds: float = 30.0,
    rate: float = 600.0,
    api: bool = True,
    seed: int = 7,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the sweep against the stack of ``settings``; returns the drill's result."""
    tag = uuid.uuid4().hex[:6]
    work = (settings.stack.var_dir / "drills" / f"abuse-{tag}").resolve()
    registry_dir = _registry_dir(settings, work)
    registry = Registry.from_dir(registry_dir)
    devices = {k: [p.device.device_id for p in registry.devices_of(k)] for k in KINDS}
    pools = make_pools(devices, f"abuse-ghost-{tag}")
    s = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic_prefix": f"abuse{tag}"}),
            "mqtt": settings.mqtt.model_copy(
                update={"client_id": f"abuse-bridge-{tag}", "share_group": f"abuse{tag}"}
            ),
            "tickets": settings.tickets.model_copy(
                update={"db_url": f"sqlite:///{work / 'tickets.db'}", "port": free_port()}
            ),
            "registry_dir": registry_dir,
        }
    )
    stack = Stack(s)
    down = [st.name for st in stack.status() if st.name != "influxdb" and not st.healthy]
    if down:
        raise StackError(f"{', '.join(down)} not running; start the stack: gridwatch stack up")
    before = stack.provisioned_devices()  # device id → kind
    stack.provision_devices(sorted(set(before) | pools.logins()), kinds={**before, **pools.kinds()})
    children: list[Child] = []
    try:
        _wait_login(s, pools.ghost)
        asyncio.run(ensure_topics(s.kafka))
        logs = work / "log"
        bridge = Child("bridge", ["ingest", "run", "--client-id", s.mqtt.client_id], s, logs)
        children.append(bridge.start())
        server = Child(
            "tickets-api", ["tickets", "serve", "--registry", str(registry_dir)], s, logs
        )
        if api:
            children.append(server.start())
        from ingest.cli import ready_file

        ready = ready_file(s, s.mqtt.client_id)
        wait_until(lambda: _alive(bridge) and ready.exists(), 60, what="bridge subscribed")
        api_result: dict[str, Any] = {}
        api_thread = None
        if api:
            base = f"http://{s.tickets.host}:{s.tickets.port}"
            wait_until(lambda: _alive(server) and _healthy(base), 60, what="tickets API")
            api_thread = threading.Thread(
                target=_api_worker, args=(s, base, registry, api_result), daemon=True
            )
            api_thread.start()
        mqtt = _with_progress(s, pools, seconds, rate, seed, progress)
        if api_thread is not None:
            api_thread.join(timeout=600)
        letters, found = _drain(s, mqtt)
        hijack, hijack_sent = run_hijack(s, pools)
        hijack["arrived"] = _arrived(s, set(hijack_sent))
        alive = {c.name: c.alive() for c in children}
    finally:
        for child in children:
            child.stop()
        stack.provision_devices(sorted(before), kinds=before)
    tracebacks = {c.name: _tracebacks(c.log_path) for c in children}
    return summarise(mqtt, letters, found, api_result, alive, tracebacks, work, hijack)


def _registry_dir(settings: Settings, work: Path) -> Path:
    """The stack's registry when it has every kind, else a synthetic district of our own."""
    current = settings.registry_dir
    if (current / "devices.json").is_file() and (current / "grids.geojson").is_file():
        reg = Registry.from_dir(current)
        if all(len(reg.devices_of(k)) >= 2 for k in KINDS) and len(reg.devices_of("water")) >= 10:
            return current
    from simulators.city import generate_city

    return generate_city(settings.sim.seed, "small").write(work / "city")


def _wait_login(settings: Settings, device: str) -> None:
    """Until the broker accepts the sweep's logins (after a restart it may still be coming up)."""
    assert settings.sim.device_secret is not None
    pw = device_password(settings.sim.device_secret.get_secret_value(), device)

    def works() -> bool:
        probe = Probe(settings, f"abuse-check-{uuid.uuid4().hex[:6]}", device, pw)
        try:
            return probe.connect(2.0) == "Success"
        finally:
            probe.close()

    wait_until(works, 20, interval_s=0.2, what="the broker to accept the new logins")


def _alive(child: Child) -> bool:
    child.check_alive()  # raises with the child's log tail when it died
    return True


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _api_worker(s: Settings, base: str, registry: Registry, out: dict[str, Any]) -> None:
    from tickets.config import ensure_dev_tokens, load_config

    try:
        ensure_dev_tokens(s.stack.var_dir)
        cfg = load_config(s)
        tokens: dict[str, str] = {str(t.role): t.token.get_secret_value() for t in cfg.tokens}
        key = cfg.open311_api_keys[0].get_secret_value()
        device = registry.devices_of("water")[0]
        place = {
            "grid_id": device.grid_id,
            "district_id": device.district_id,
            "lon": device.device.lon,
            "lat": device.device.lat,
        }
        caller = ApiCaller(base, tokens, key, place)
        try:
            openapi = caller.client.get("/openapi.json").json()
            out["sweep"] = run_api_sweep(caller, openapi)
        finally:
            caller.close()
    except Exception as exc:  # reported as a failed API sweep, never lost
        out["error"] = repr(exc)


def _with_progress(
    s: Settings, pools: Pools, seconds: float, rate: float, seed: int, progress: bool
) -> MqttSweep:
    if not progress:
        return run_mqtt_sweep(s, pools, seconds=seconds, rate=rate, seed=seed)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("attack sweep over MQTT", total=seconds, info="")
        started = time.monotonic()

        def tick(m: MqttSweep) -> None:
            sent = sum(m.sent.values())
            bar.update(task, completed=time.monotonic() - started, info=f"{sent} messages")

        return run_mqtt_sweep(s, pools, seconds=seconds, rate=rate, seed=seed, on_round=tick)


def _drain(
    s: Settings, mqtt: MqttSweep, timeout_s: float = 120.0
) -> tuple[list[DeadLetter], Counter[tuple[str, int]]]:
    """Every dead letter and reading once the bridge has handled what was sent."""
    want_letters = sum(
        n
        for cls, n in mqtt.sent.items()
        if mqtt.route[cls] == BRIDGE and mqtt.expect[cls] != READING and cls != "rate_limited"
    )
    state: dict[str, Any] = {}

    def done() -> bool:
        letters = [
            parse_record(DeadLetter, r.value)
            for r in asyncio.run(read_topic(s.kafka, s.kafka.topic("deadletter")))
        ]
        found = _readings(s)
        state["letters"], state["found"] = letters, found
        arrived = all(k in found for k in mqtt.readings)
        return len(letters) >= want_letters and arrived

    # on timeout the sweep is judged on what arrived: the figures show what is missing
    with contextlib.suppress(TimeoutError):
        wait_until(done, timeout_s, interval_s=2.0, what="the bridge to handle the sweep")
    return state.get("letters", []), state.get("found", Counter())


def _readings(s: Settings) -> Counter[tuple[str, int]]:
    found: Counter[tuple[str, int]] = Counter()
    for kind in KINDS:
        for rec in asyncio.run(read_topic(s.kafka, readings_topic(s.kafka, kind))):
            for reading in parse_record(ReadingBatch, rec.value).readings:
                found[(reading.device_id, reading.seq if reading.seq is not None else -1)] += 1
    return found


def _arrived(s: Settings, keys: set[tuple[str, int]], timeout_s: float = 20.0) -> int:
    """How many of ``keys`` reached the readings topics (waits until all did, or timeout)."""
    state = {"n": 0}

    def check() -> bool:
        found = _readings(s)
        state["n"] = sum(1 for k in keys if k in found)
        return state["n"] == len(keys)

    with contextlib.suppress(TimeoutError):
        wait_until(check, timeout_s, interval_s=1.0, what="the readings sent during the hijack")
    return state["n"]


def _tracebacks(path: Path) -> int:
    try:
        return path.read_text(errors="replace").count("Traceback (most recent call last)")
    except OSError:
        return 0


def summarise(
    mqtt: MqttSweep,
    letters: list[DeadLetter],
    found: Counter[tuple[str, int]],
    api_result: dict[str, Any],
    alive: dict[str, bool],
    tracebacks: dict[str, int],
    work: Path,
    hijack: dict[str, Any],
) -> dict[str, Any]:
    """The drill's result document (pure over what was sent and what was found)."""
    by_class: dict[str, Counter[str]] = {}
    unmatched: Counter[str] = Counter()
    refused_leaks = 0
    internal = 0
    for d in letters:
        key = (d.topic, d.raw)
        cls = mqtt.by_key.get(key)
        if cls is None:
            unmatched[d.reason.value] += 1
            refused_leaks += key in mqtt.refused_keys
        else:
            by_class.setdefault(cls, Counter())[d.reason.value] += 1
        internal += d.detail.startswith("internal ")
    classes: dict[str, dict[str, Any]] = {}
    for cls in sorted(mqtt.sent):
        sent, route, expect = mqtt.sent[cls], mqtt.route[cls], mqtt.expect[cls]
        got = by_class.get(cls, Counter())
        doc: dict[str, Any] = {"route": route, "expect": expect, "sent": sent}
        doc["dead_letters"] = dict(got)
        if route != BRIDGE:
            doc["refused"] = mqtt.refused[cls]
            doc["broker_answers"] = dict(mqtt.broker_answers.get(cls, {}))
            doc["ok"] = mqtt.refused[cls] == sent and not got
        elif cls == "rate_limited":
            accepted = sum(1 for k in mqtt.flood if k in found)
            doc["accepted"] = accepted
            doc["ok"] = set(got) <= {"rate_limited"} and got["rate_limited"] >= 1
            doc["ok"] = doc["ok"] and accepted + got["rate_limited"] == sent
        elif expect == READING:
            mine = [k for k, c in mqtt.readings.items() if c == cls]
            doc["arrived"] = sum(1 for k in mine if k in found)
            doc["ok"] = doc["arrived"] == len(mine) and not got
        else:
            doc["ok"] = set(got) == {expect} and got[expect] >= sent
        classes[cls] = doc
    bad_classes = [c for c in classes if not c.startswith(("valid:", "duplicate:first"))]
    expected_readings = set(mqtt.readings) | mqtt.flood
    hijack_seqs = range(HIJACK_SEQ0, HIJACK_SEQ0 + int(hijack.get("sent", 0)))
    leaks = sorted(k for k in found if k not in expected_readings and k[1] not in hijack_seqs)
    lost = sorted(k for k in mqtt.readings if k not in found)
    acl_classes = [c for c in classes if classes[c]["route"] != BRIDGE or c.startswith("acl:")]
    connects = {name: dict(c) for name, c in mqtt.connects.items()}
    connect_tries = sum(sum(c.values()) for c in mqtt.connects.values())
    connect_refused = sum(
        n for c in mqtt.connects.values() for text, n in c.items() if text != "Success"
    )
    spy_messages = sum(int(v["messages_received"]) for v in mqtt.subscribes.values())
    # every forbidden subscription, the bridge's share group included, must be refused
    subscribes = [*mqtt.subscribes.values(), hijack]
    subscribes_refused = sum(1 for v in subscribes if v.get("refused"))
    acl_tried = sum(classes[c]["sent"] for c in acl_classes) + connect_tries + len(subscribes)
    acl_refused = (
        sum(classes[c].get("refused", 0) for c in acl_classes)
        + connect_refused
        + subscribes_refused
    )
    sweep: ApiSweep | None = api_result.get("sweep")
    api_doc: dict[str, Any] = {"error": api_result.get("error")}
    if sweep is not None:
        api_doc.update(
            total_calls=sweep.total,
            routes=len(sweep.calls),
            calls_per_s=round(sweep.total / sweep.seconds, 1) if sweep.seconds else None,
            server_errors=sweep.server_errors,
            violations=sweep.violations,
            unmapped_routes=sweep.unmapped,
            calls=sweep.calls,
        )
    deaths = sorted(name for name, ok in alive.items() if not ok)
    http_5xx = sweep.server_errors if sweep is not None else 0
    crashes = http_5xx + len(deaths) + sum(tracebacks.values()) + internal
    sent_total = sum(mqtt.sent.values())
    figures: dict[str, Any] = {
        "classes_tried": len(bad_classes),
        "messages_sent": sent_total,
        "rounds": mqtt.rounds,
        "seconds": round(mqtt.seconds, 1),
        "rate_achieved_msg_s": round(sent_total / mqtt.seconds, 1) if mqtt.seconds else 0.0,
        "rounds_per_s_target": round(mqtt.rounds_per_s_target, 2),
        "dead_letters_by_reason": dict(sorted(Counter(d.reason.value for d in letters).items())),
        "dead_letters_unmatched": dict(unmatched),
        "classes": classes,
        "classes_failed": sorted(c for c, d in classes.items() if not d["ok"]),
        "acl": {
            "violations_tried": acl_tried,
            "violations_refused": acl_refused,
            "connects": connects,
            "subscribes": mqtt.subscribes,
            "subscribes_tried": len(subscribes),
            "subscribes_refused": subscribes_refused,
            "messages_delivered_to_spies": spy_messages,
            "refused_messages_in_kafka": refused_leaks,
            "share_group_hijack": {**hijack, "lost": hijack["sent"] - hijack["arrived"]},
        },
        "valid_readings": {"sent": len(mqtt.readings), "arrived": len(mqtt.readings) - len(lost)},
        "lost_readings": [list(k) for k in lost[:20]],
        "leaked_readings": [list(k) for k in leaks[:20]],
        "attack_readings_in_kafka": sum(1 for _, seq in found if seq >= ATTACK_SEQ0),
        "api": api_doc,
        "crashes": {
            "total": crashes,
            "http_5xx": http_5xx,
            "process_deaths": deaths,
            "tracebacks": tracebacks,
            "decoder_internal_errors": internal,
        },
        "work_dir": str(work),
    }
    checks = [
        (crashes == 0, f"{crashes} crash(es): 5xx, dead child, traceback or decoder bug"),
        (
            not figures["classes_failed"],
            f"classes without their outcome: {figures['classes_failed'][:8]}",
        ),
        (acl_tried == acl_refused, f"{acl_tried - acl_refused} ACL violation(s) not refused"),
        (spy_messages == 0, f"{spy_messages} message(s) delivered to forbidden subscriptions"),
        (
            hijack.get("refused", False),
            f"the broker let a device into the bridge's share group (SUBACK {hijack['suback']})",
        ),
        (
            hijack["arrived"] == hijack["sent"] and hijack["messages_received"] == 0,
            f"a device trying the bridge's share group made {hijack['sent'] - hijack['arrived']} "
            f"of {hijack['sent']} readings vanish ({hijack['messages_received']} delivered to it)",
        ),
        (refused_leaks == 0, f"{refused_leaks} refused message(s) reached Kafka"),
        (not lost, f"{len(lost)} valid reading(s) lost"),
        (not leaks, f"{len(leaks)} unexpected reading(s) in Kafka"),
        (sweep is not None, f"API sweep did not run: {api_result.get('error')}"),
        (sweep is None or not sweep.violations, "API calls answered with a wrong status"),
        (sweep is None or not sweep.unmapped, "API routes the sweep does not know"),
    ]
    figures["failures"] = [what for ok, what in checks if not ok]
    passed = not figures["failures"]
    return {"name": "abuse", "passed": passed, "holds": HOLDS, "figures": figures}


def _cli() -> None:  # pragma: no cover - a manual entry until `gridwatch drill abuse` lands
    import json
    import sys

    from gridwatch.settings import load_settings

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    try:
        result = run_abuse(load_settings(), seconds=seconds)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    _cli()
