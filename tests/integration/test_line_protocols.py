"""The line's protocols with real clients on loopback, against a real agent (synthetic camera, trigger
mode, the demo model) and a real mosquitto: a pymodbus PLC, an asyncua client, a Sparkplug B
subscriber decoding with the protobuf schema, and the faults a plant network brings (an idle
client, 50 at once, an out-of-range write, a malformed Sparkplug command).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.config import load_config
from agent.line.modbus import ModbusServer
from agent.line.opcua import OpcuaServer
from agent.line.service import Line
from agent.line.sparkplug import SparkplugNode
from agent.line.sparkplug_pb import payload_class
from agent.line.state import LineState
from agent.line.trigger import Triggers, TriggerStamp
from agent.protocol.payloads import ResultPayload
from agent.protocol.topics import Topics
from tests.support.agentproc import write_config
from tests.support.mosquitto import Mosquitto, Subscriber

pytestmark = pytest.mark.integration

pymodbus_client = pytest.importorskip("pymodbus.client")
asyncua = pytest.importorskip("asyncua")


def _wait(cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def agent(mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path) -> Iterator[Agent]:
    config = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source="synthetic:3",
        camera={"mode": "trigger", "fps": 30, "realtime": True, "synthetic_defect_rate": 0.5},
        modbus={"listen": "127.0.0.1:0", "unit_id": 1},
        opcua={"listen": "127.0.0.1:0"},
        sparkplug={"enabled": True, "group_id": unique_prefix},
        homeassistant={"enabled": True, "discovery_prefix": f"{unique_prefix}-ha"},
    )  # fmt: skip
    agent = Agent(load_config(config))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    line = agent.lines[0]
    _wait(lambda: all(getattr(p, "port", 1) for p in line.parts))
    yield agent
    agent.stop("test over")
    thread.join(20)


def _part(line: Line, kind: type) -> Any:
    return next(p for p in line.parts if isinstance(p, kind))


def test_a_plc_reads_counters_change_and_triggers_through_the_coil(
    agent: Agent, mosquitto: Mosquitto
) -> None:
    line = agent.lines[0]
    port = _part(line, ModbusServer).port
    idle = socket.create_connection(("127.0.0.1", port))  # a client that connects and never reads
    topics = agent.topics
    with Subscriber(mosquitto.port, topics.result) as results:
        plc = pymodbus_client.ModbusTcpClient("127.0.0.1", port=port)
        assert plc.connect()
        try:
            before = plc.read_input_registers(0, count=24, device_id=1).registers
            for n in range(1, 4):
                assert not plc.write_coil(0, True, device_id=1).isError()
                _wait(
                    lambda n=n: (
                        plc.read_input_registers(0, count=2, device_id=1).registers[1] >= before[1] + n
                    )
                )
            regs = plc.read_holding_registers(0, count=24, device_id=1).registers
            assert regs[1] - before[1] == 3 and regs[9] == 3  # parts and triggers
            assert regs[7] == 1  # running
            version = bytes(b for r in regs[16:24] for b in (r >> 8, r & 0xFF)).rstrip(b"\0").decode()
            assert version == agent.slot.model.version
            assert 0 <= regs[5] <= 1000 and regs[2:4] == [0, agent.pipeline.counters.defects]

            bad = plc.write_register(32, 7, device_id=1)  # out of range: refused, nothing changes
            assert bad.isError() and bad.exception_code == 3
            assert plc.write_register(3, 0, device_id=1).exception_code == 2  # read-only
            assert plc.read_holding_registers(32, count=1, device_id=1).registers == [1]
            assert not plc.write_coil(0, True, device_id=1).isError()  # and the line goes on
            _wait(lambda: plc.read_input_registers(0, count=2, device_id=1).registers[1] == before[1] + 4)
        finally:
            plc.close()
            idle.close()
        got = results.wait_for(4, timeout=10)
    tags = [json.loads(m[1])["trigger"] for m in got]
    assert [t["seq"] for t in tags] == [1, 2, 3, 4] and {t["source"] for t in tags} == {"modbus"}
    settle_ms = 1000 / 30
    assert all(t["exposure_delay_ms"] >= settle_ms for t in tags)  # every frame came after its trigger


def test_fifty_modbus_clients_at_once_all_get_answers(agent: Agent) -> None:
    port = _part(agent.lines[0], ModbusServer).port

    def one(_: int) -> list[int]:
        client = pymodbus_client.ModbusTcpClient("127.0.0.1", port=port, timeout=10)
        try:
            assert client.connect()
            return list(client.read_input_registers(0, count=24, device_id=1).registers)
        finally:
            client.close()

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    assert len(answers) == 50 and all(len(a) == 24 for a in answers)


def test_an_opcua_client_reads_the_nodes_and_calls_trigger(agent: Agent) -> None:
    port = _part(agent.lines[0], OpcuaServer).port
    idle = socket.create_connection(("127.0.0.1", port))  # connects and never says hello

    async def session() -> tuple[int, str, int, int, str]:
        async with asyncua.Client(f"opc.tcp://127.0.0.1:{port}/inspection/", timeout=10) as client:
            ns = await client.get_namespace_index("urn:inspection-agent")
            device = await client.nodes.objects.get_child([f"{ns}:Inspection", f"{ns}:cam-01"])
            parts = await device.get_child(f"{ns}:PartCount")
            before = await parts.read_value()
            seq, label = await device.call_method(f"{ns}:Trigger")
            await asyncio.sleep(0.5)
            after = await parts.read_value()
            version = await (await device.get_child(f"{ns}:ModelVersion")).read_value()
            return seq, label, before, after, version

    try:
        seq, label, before, after, version = asyncio.run(session())
    finally:
        idle.close()
    assert seq == 1 and label in agent.slot.model.package.labels
    assert after == before + 1 and version == agent.slot.model.version


def test_a_sparkplug_subscriber_decodes_births_and_data(
    agent: Agent, mosquitto: Mosquitto, unique_prefix: str
) -> None:
    node = _part(agent.lines[0], SparkplugNode)
    payload = payload_class()
    with Subscriber(mosquitto.port, f"spBv1.0/{unique_prefix}/#") as sub:
        node.birth()  # a late subscriber asks for a rebirth; here the test does it directly
        births = sub.wait_for(2, where=lambda m: "BIRTH" in m[0])
        nbirth = payload.FromString(next(m[1] for m in births if "/NBIRTH/" in m[0]))
        assert {m.name: m.long_value for m in nbirth.metrics}["bdSeq"] == node.bd_seq and nbirth.seq == 0
        dbirth = payload.FromString(next(m[1] for m in births if "/DBIRTH/" in m[0]))
        names = {m.name for m in dbirth.metrics}
        assert {"Parts", "Defects", "Last/Label", "State", "Model/Version", "Trigger"} <= names

        # A malformed command is counted and dropped; a DCMD Trigger inspects a part.
        sub.publish(node.topic("NCMD"), b"\xff\xff\xffnot protobuf", qos=0)
        cmd = payload(timestamp=int(time.time() * 1000))
        cmd.metrics.add(name="Trigger", datatype=11, boolean_value=True)
        sub.publish(node.topic("DCMD", device=True), cmd.SerializeToString(), qos=0)
        data = sub.wait_for(
            1, timeout=10, where=lambda m: "/DDATA/" in m[0] and _metric(payload, m[1], "Parts")
        )
        assert _metric(payload, data[-1][1], "Parts") is not None
        assert node.malformed == 1
    assert agent.lines[0].state.snapshot().triggers == 1


def _metric(payload: Any, raw: bytes, name: str) -> Any:
    return next(
        (m.long_value for m in payload.FromString(raw).metrics if m.name == name and m.long_value), None
    )


def test_home_assistant_finds_the_device(agent: Agent, mosquitto: Mosquitto, unique_prefix: str) -> None:
    with Subscriber(mosquitto.port, f"{unique_prefix}-ha/#") as sub:
        docs = sub.wait_for(7, timeout=10)
    configs = {m[0]: json.loads(m[1]) for m in docs}
    topics: Topics = agent.topics
    states = {c["state_topic"] for c in configs.values()}
    assert states == {topics.result, topics.health}
    assert all(c["availability_topic"] == topics.status for c in configs.values())


# -- OPC UA with Basic256Sha256 ------------------------------------------------------------------


def _self_signed(directory: Path, name: str, uri: str, use: Any) -> tuple[Path, Path]:
    """An RSA key and certificate (Basic256Sha256 needs RSA; tests/support/certs.py makes EC ones)."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate

    key, cert = directory / f"{name}-key.pem", directory / f"{name}-cert.der"
    asyncio.run(setup_self_signed_certificate(key, cert, uri, "localhost", [use], {"commonName": name}))
    return key, cert


@pytest.fixture
def secure_opcua(tmp_path: Path) -> Iterator[tuple[OpcuaServer, Triggers, Path]]:
    yield from _secure_opcua(tmp_path)


def _secure_opcua(tmp_path: Path, **extra: Any) -> Iterator[tuple[OpcuaServer, Triggers, Path]]:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from agent.config.line import OpcuaConfig

    key, cert = _self_signed(
        tmp_path, "server", "urn:freeopcua:python:server", ExtendedKeyUsageOID.SERVER_AUTH
    )
    state = LineState()

    def inspect(stamp: TriggerStamp) -> ResultPayload:  # the part's result, as the pipeline would give it
        state.add(parts=1)
        return {"label": "scratch", "defect": True}  # type: ignore[typeddict-item]

    triggers = Triggers(inspect, state=state)
    triggers.start()
    cfg = OpcuaConfig(listen="127.0.0.1:0", certificate=cert.name, private_key=key.name, **extra)
    server = OpcuaServer(cfg, tmp_path, device="cam-01", state=state, fire=triggers.fire)
    server.start()
    yield server, triggers, tmp_path
    server.stop()
    triggers.stop()


def test_opcua_with_basic256sha256_serves_a_client_with_its_certificate(
    secure_opcua: tuple[OpcuaServer, Triggers, Path],
) -> None:
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography.x509.oid import ExtendedKeyUsageOID

    server, _triggers, directory = secure_opcua
    ckey, ccert = _self_signed(directory, "client", "urn:plc:client", ExtendedKeyUsageOID.CLIENT_AUTH)
    url = f"opc.tcp://127.0.0.1:{server.port}/inspection/"

    async def session(mode: Any) -> tuple[int, str, int, str]:
        client = asyncua.Client(url, timeout=10)
        client.application_uri = "urn:plc:client"
        await client.set_security(
            SecurityPolicyBasic256Sha256, str(ccert), str(ckey),
            server_certificate=str(directory / "server-cert.der"), mode=mode,
        )  # fmt: skip
        async with client:
            ns = await client.get_namespace_index("urn:inspection-agent")
            device = await client.nodes.objects.get_child([f"{ns}:Inspection", f"{ns}:cam-01"])
            seq, label = await device.call_method(f"{ns}:Trigger")
            await asyncio.sleep(0.3)  # one refresh of the variables
            parts = await (await device.get_child(f"{ns}:PartCount")).read_value()
            state = await (await device.get_child(f"{ns}:State")).read_value()
            return seq, label, parts, state

    mode = asyncua.ua.MessageSecurityMode
    assert asyncio.run(session(mode.SignAndEncrypt)) == (1, "scratch", 1, "starting")
    assert asyncio.run(session(mode.Sign))[:3] == (2, "scratch", 2)


def test_opcua_refuses_a_client_without_security_when_a_certificate_is_configured(
    secure_opcua: tuple[OpcuaServer, Triggers, Path],
) -> None:
    server, triggers, _directory = secure_opcua
    url = f"opc.tcp://127.0.0.1:{server.port}/inspection/"

    async def insecure() -> None:  # a well-behaved client finds no endpoint without security
        async with asyncua.Client(url, timeout=10) as client:
            await client.nodes.objects.get_children()

    with pytest.raises(asyncua.ua.UaError, match="No matching endpoints"):
        asyncio.run(insecure())

    async def forced() -> list[str]:
        """A client that skips the endpoint check and opens a None channel anyway (asyncua's server
        accepts the channel): the session must not activate, and nothing can be read or called."""
        ua = asyncua.ua
        client = asyncua.Client(url, timeout=10)
        await client.connect_socket()
        await client.send_hello()
        await client.open_secure_channel()
        refusals = []
        try:
            me = ua.ApplicationDescription(
                ApplicationUri="urn:rogue", ApplicationType=ua.ApplicationType.Client
            )
            params = ua.CreateSessionParameters(
                ClientDescription=me, EndpointUrl=url, SessionName="rogue", RequestedSessionTimeout=60000,
                ClientNonce=b"0" * 32,
            )  # fmt: skip
            await client.uaclient.create_session(params)
            activate = ua.ActivateSessionParameters(
                LocaleIds=["en"], UserIdentityToken=ua.AnonymousIdentityToken(PolicyId="anonymous")
            )
            namespaces = ua.ReadValueId(NodeId=ua.NodeId(2255, 0), AttributeId=ua.AttributeIds.Value)
            read = ua.ReadParameters(NodesToRead=[namespaces])
            for attempt in (
                lambda: client.uaclient.activate_session(activate),
                lambda: client.uaclient.read(read),
            ):
                try:
                    await attempt()
                except ua.UaStatusCodeError as exc:
                    refusals.append(type(exc).__name__)
        finally:
            client.disconnect_socket()
        return refusals

    assert asyncio.run(forced()) == ["BadUserAccessDenied", "BadSessionNotActivated"]
    assert triggers.failed == 0 and triggers_received(server) == 0  # nothing was triggered
    _wait(lambda: server.clients() == 0, 5)  # and the refused connections are closed


def triggers_received(server: OpcuaServer) -> int:
    return server._state.snapshot().triggers  # the state the server serves


# -- Sparkplug bdSeq across restarts ---------------------------------------------------------------


def test_sparkplug_bdseq_continues_across_a_restart(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    """Each NDEATH carries its NBIRTH's bdSeq, and the next process's NBIRTH takes the next one
    (kept in state.dir), so a host never matches an old death to a new birth."""
    config = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source="synthetic:1",
        sparkplug={"enabled": True, "group_id": unique_prefix},
    )  # fmt: skip
    cfg = load_config(config)
    payload = payload_class()

    def bd_seq(raw: bytes) -> int:
        return int({m.name: m.long_value for m in payload.FromString(raw).metrics}["bdSeq"])

    seen: list[tuple[str, int]] = []
    with Subscriber(mosquitto.port, f"spBv1.0/{unique_prefix}/+/+") as sub:
        for run in range(3):
            node = SparkplugNode(cfg, state=LineState(), fire=lambda _source: None)
            node.start()
            births = sub.wait_for(run + 1, timeout=10, where=lambda m: "/NBIRTH/" in m[0])
            node.stop()
            deaths = sub.wait_for(run + 1, timeout=10, where=lambda m: "/NDEATH/" in m[0])
            seen += [("birth", bd_seq(births[-1][1])), ("death", bd_seq(deaths[-1][1]))]
    assert seen == [("birth", 0), ("death", 0), ("birth", 1), ("death", 1), ("birth", 2), ("death", 2)]
    assert (cfg.state_dir / "sparkplug-bdseq").read_text() == "2\n"


def test_sparkplug_bdseq_file_that_is_garbage_starts_over_at_zero(tmp_path: Path) -> None:
    from agent.line.sparkplug import _next_bd_seq

    path = tmp_path / "sparkplug-bdseq"
    path.write_text("not a number")
    assert _next_bd_seq(path) == 0 and path.read_text() == "0\n"
    path.write_text("255\n")
    assert _next_bd_seq(path) == 0  # wraps like every Sparkplug sequence
    assert _next_bd_seq(path) == 1


def test_an_mqtt_trigger_command_goes_through_the_line_queue_with_its_tag(
    agent: Agent, mosquitto: Mosquitto
) -> None:
    topics: Topics = agent.topics
    replies = f"{topics.root}/replies"
    with Subscriber(mosquitto.port, [replies, topics.result]) as sub:
        sub.publish(topics.cmd("trigger"), b"{}", response_topic=replies, correlation=b"m1")
        got = sub.wait_for(1, 15, where=lambda m: m[0] == replies)
        published = sub.wait_for(1, 10, where=lambda m: m[0] == topics.result)
    reply = json.loads(got[0][1])
    assert reply["ok"], reply
    tag = reply["result"]["trigger"]
    assert tag["source"] == "mqtt" and tag["seq"] == 1 and tag["exposure_delay_ms"] >= 0
    assert json.loads(published[0][1])["trigger"] == tag  # the published result carries it too
    health = agent.lines[0].health()
    assert health["triggers"]["received"] == 1 and health["triggers"]["missed"] == 0


def test_opcua_with_a_trust_list_serves_only_the_clients_in_it(tmp_path: Path) -> None:
    """``opcua.trusted_clients``: the PLC whose certificate is in the folder gets a session; another
    client with a valid self-signed certificate is refused (BadUserAccessDenied) and named in the
    log by its SHA-256, and copying its certificate into the folder lets it in, without a restart."""
    import shutil

    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from structlog.testing import capture_logs

    from agent.line.opcua import fingerprint

    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "notes.txt").write_text("not a certificate, not looked at")
    (trusted / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")  # logged, left out
    plc_key, plc_cert = _self_signed(tmp_path, "plc", "urn:plc:client", ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue_key, rogue_cert = _self_signed(
        tmp_path, "rogue", "urn:rogue:client", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    shutil.copy(plc_cert, trusted / "plc.der")
    gen = _secure_opcua(tmp_path, trusted_clients="trusted")
    server, _triggers, directory = next(gen)
    url = f"opc.tcp://127.0.0.1:{server.port}/inspection/"

    async def trigger(key: Path, cert: Path, uri: str) -> int:
        client = asyncua.Client(url, timeout=10)
        client.application_uri = uri
        await client.set_security(
            SecurityPolicyBasic256Sha256, str(cert), str(key),
            server_certificate=str(directory / "server-cert.der"),
            mode=asyncua.ua.MessageSecurityMode.SignAndEncrypt,
        )  # fmt: skip
        async with client:
            ns = await client.get_namespace_index("urn:inspection-agent")
            device = await client.nodes.objects.get_child([f"{ns}:Inspection", f"{ns}:cam-01"])
            seq, _label = await device.call_method(f"{ns}:Trigger")
            return int(seq)

    try:
        assert asyncio.run(trigger(plc_key, plc_cert, "urn:plc:client")) == 1
        with capture_logs() as logs, pytest.raises(asyncua.ua.UaStatusCodeError, match="BadUserAccessDenied"):
            asyncio.run(trigger(rogue_key, rogue_cert, "urn:rogue:client"))
        refused = [e for e in logs if e["event"] == "opcua_untrusted_client_refused"]
        assert [e["sha256"] for e in refused] == [fingerprint(rogue_cert.read_bytes())]
        assert "CN=rogue" in refused[0]["subject"]
        assert triggers_received(server) == 1  # the refused client triggered nothing
        shutil.copy(rogue_cert, trusted / "rogue.der")  # the integrator trusts it
        assert asyncio.run(trigger(rogue_key, rogue_cert, "urn:rogue:client")) == 2
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def test_opcua_trust_list_that_is_not_a_directory_is_one_line(tmp_path: Path) -> None:
    from agent.config.line import OpcuaConfig
    from agent.errors import LineError

    cfg = OpcuaConfig(
        listen="127.0.0.1:0", certificate="c.der", private_key="k.pem", trusted_clients="nowhere"
    )
    with pytest.raises(LineError, match=r"opcua.trusted_clients: .*nowhere is not a directory"):
        OpcuaServer(cfg, tmp_path, device="cam-01", state=LineState(), fire=lambda _s: None)
