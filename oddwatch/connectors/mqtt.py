"""MQTT connector: the only module that imports paho-mqtt (2.x, MQTT v5).

- :class:`MqttSource`: Bytewax ``DynamicSource`` of :class:`~oddwatch.records.Message`, one
  persistent-session client per worker (stable client id, ``clean_start=False``, session
  expiry), optional shared subscription, manual acks.
- :class:`MqttPublisher`: a blocking-connect publisher that keeps QoS 1 messages until the
  broker acknowledges them and blocks (never drops) when too many are in flight.
- :class:`MqttSink`: Bytewax ``DynamicSink`` of :class:`~oddwatch.records.Outgoing`.
- :class:`MqttWalReceiver`: the same persistent-session subscriber, appending each message to a
  :class:`~oddwatch.connectors.wal.Wal` and acknowledging it only once appended (a broker's
  redelivery of a message the WAL already holds is acknowledged and not appended again).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from oddwatch.connectors.held import NOT_HELD, HeldMeter
from oddwatch.connectors.wal import Wal
from oddwatch.records import Message, Outgoing, utcnow, valid_text
from oddwatch.settings import MqttSettings

log = logging.getLogger(__name__)

#: Most messages one ``next_batch`` hands to the dataflow.
BATCH_CAP = 10_000
#: Most readings or log lines (counted as a payload's lines) in one batch: a batch is parsed,
#: scored and written before the next one, so 10,000 messages of 100 readings each would hold
#: the flow (and its memory) for a million readings.
BATCH_CAP_LINES = 20_000
#: How long an idle source partition sleeps before polling again.
IDLE_AWAKE = timedelta(milliseconds=10)
#: Messages wait up to this long at the source to travel in one batch: every Bytewax step has
#: a fixed cost per batch, so one-message batches cost about twice as much CPU per reading.
BATCH_WAIT = timedelta(milliseconds=20)
BATCH_MIN = 500  # a batch this large goes at once
#: QoS 1/2 messages the broker may send a source before it acks (MQTT 5 Receive Maximum).
RECEIVE_MAXIMUM = 1000
#: QoS 1/2 messages a publisher keeps in flight before ``publish`` blocks (paho slows down with
#: many in flight: 100 measured ~2x faster than 1000 here).
PUBLISH_INFLIGHT = 100


class MqttError(RuntimeError):
    """The broker could not be reached or refused us; the message names host:port and client id."""


def _client(settings: MqttSettings, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    if settings.tls_ca or settings.tls_cert:
        client.tls_set(
            ca_certs=settings.tls_ca or None,
            certfile=settings.tls_cert or None,
            keyfile=settings.tls_key or None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)  # type: ignore[arg-type]
    return client


def _connect_properties(settings: MqttSettings, *, persistent: bool) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = settings.session_expiry_s
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


def subscription_topic(settings: MqttSettings, topic: str, group: str | None = None) -> str:
    """*topic* as subscribed: ``$share/<group>/<topic>`` when a shared group is set.

    *group* defaults to ``settings.shared_group``.

    >>> subscription_topic(MqttSettings(shared_group="g"), "plant/+/+/+")
    '$share/g/plant/+/+/+'
    """
    group = settings.shared_group if group is None else group
    return f"$share/{group}/{topic}" if group else topic


def shared_group(settings: MqttSettings, flow: str, worker_count: int) -> str:
    """The shared-subscription group of a flow's source partitions ("" for none).

    ``[mqtt].shared_group`` when set; otherwise, when a flow runs several workers (threads or
    processes of one Bytewax cluster), ``{client_id}-{flow}``: each message then goes to one
    worker and Bytewax routes each reading to the worker that owns its series, so every reading
    is scored once.

    >>> shared_group(MqttSettings(), "sensors", 2), shared_group(MqttSettings(), "sensors", 1)
    ('oddwatch-sensors', '')
    """
    if settings.shared_group:
        return settings.shared_group
    return f"{settings.client_id}-{flow}" if worker_count > 1 else ""


# --------------------------------------------------------------------------- source
class _MqttSourcePartition(StatelessSourcePartition[Message]):
    def __init__(self, source: MqttSource, worker_index: int, worker_count: int = 1) -> None:
        self.source = source
        self.settings = source.settings
        self.worker_index = worker_index
        # worker_index counts the workers of every process of a cluster: the id is unique in it
        self.client_id = f"{self.settings.client_id}-{source.flow}-w{worker_index}"
        self.group = shared_group(self.settings, source.flow, worker_count)
        self._queue: deque[tuple[Message, int, int]] = deque()
        self._idle = False
        self._pending_subs: set[int] = set()
        self._connected_once = False
        self.client = _client(self.settings, self.client_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_connect_fail = self._on_connect_fail
        self._unreachable_logged = False
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=_connect_properties(self.settings, persistent=True),
        )
        self.client.loop_start()  # connects (and reconnects with backoff) in paho's thread

    # paho callbacks (paho's network thread)
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        if reason.is_failure:
            log.error("mqtt source %s: broker %s refused the connection: %s", self.client_id, where, reason)
            return
        if self._unreachable_logged:
            log.warning("mqtt source %s: broker %s is reachable again", self.client_id, where)
            self._unreachable_logged = False
        first, self._connected_once = not self._connected_once, True
        if flags.session_present and not first:
            # The broker kept our subscriptions (and queued what arrived meanwhile).
            log.info("mqtt source %s: resumed session on %s", self.client_id, where)
            self.source._mark_subscribed(self.worker_index)
            return
        # A new session, or the first connect of this process: (re)subscribe so a changed topic
        # list takes effect. Subscribing again to an existing filter keeps its queued messages,
        # and retained messages are only sent for filters that are new to the session.
        options = SubscribeOptions(qos=self.settings.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        topics = [(subscription_topic(self.settings, t, self.group), options) for t in self.source.topics]
        # A session kept from a run with another worker count holds the other form of each
        # filter: drop it, or the broker would send this worker a second copy of every message.
        other = [subscription_topic(self.settings, t, "" if self.group else f"{self.settings.client_id}-{self.source.flow}")
                 for t in self.source.topics]
        if first and flags.session_present:
            client.unsubscribe(other)
        result, mid = client.subscribe(topics)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            log.error("mqtt source %s: subscribe to %s failed: %s", self.client_id, topics, mqtt.error_string(result))
            return
        self._pending_subs.add(mid)
        log.info("mqtt source %s: %s session on %s, subscribing to %s", self.client_id,
                 "resumed" if flags.session_present else "new", where, self.source.topics)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, reasons: list[Any], _p: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("mqtt source %s: broker refused subscriptions %s: %s", self.client_id, self.source.topics, failed)
        self._pending_subs.discard(mid)
        if not self._pending_subs and not failed:
            self.source._mark_subscribed(self.worker_index)

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        if not self._unreachable_logged:  # once per outage; paho retries every reconnect_max_s at most
            self._unreachable_logged = True
            log.error("mqtt source %s: broker %s:%s unreachable; retrying every %.1f s at most (check that the "
                      "broker runs, e.g. `oddwatch services up`, and [mqtt].host/port)", self.client_id,
                      self.settings.host, self.settings.port, self.settings.reconnect_max_s)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self.source._closing:
            log.warning("mqtt source %s: disconnected from %s:%s (%s); reconnecting",
                        self.client_id, self.settings.host, self.settings.port, reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.append((Message(msg.topic, bytes(msg.payload), utcnow(), msg.qos), msg.mid, msg.qos))

    # Bytewax side (worker thread)
    def next_batch(self) -> list[Message]:
        queue = self._queue
        n = min(len(queue), BATCH_CAP)
        if 0 < n < BATCH_MIN and utcnow() - queue[0][0].received < BATCH_WAIT:
            self._idle = True  # wake again shortly: more messages may join this batch
            return []
        if n == 0:
            stop = self.source.stop
            if stop is not None and stop.is_set():
                raise StopIteration
            self._idle = True
            return []
        self._idle = False
        out = []
        lines = 0
        for _ in range(n):
            if lines >= BATCH_CAP_LINES:
                break
            message, mid, qos = queue.popleft()
            lines += message.payload.count(b"\n") + 1
            # At-least-once delivery ends here: the broker forgets the message once acked, so a
            # crash between this ack and the sink's write loses it. Future fault-injection work:
            # ack only after the sink's durable write (InfluxWriter spool / MqttPublisher ack).
            if qos > 0:
                self.client.ack(mid, qos)
            out.append(message)
        return out

    def next_awake(self) -> datetime | None:
        return utcnow() + IDLE_AWAKE if self._idle else None

    def close(self) -> None:
        self.source._closing = True
        self.client.disconnect()  # the session (and its queue) stays on the broker until expiry
        self.client.loop_stop()


class MqttSource(DynamicSource[Message]):
    """Bytewax source of raw MQTT messages, one persistent-session client per worker.

    Parameters
    ----------
    settings
        Broker, credentials, QoS, session expiry, shared group, reconnect backoff.
    topics
        Topic filters to subscribe to, prefixed with ``$share/<group>/`` (see
        :func:`shared_group`) when ``settings.shared_group`` is set or the flow runs several
        workers, so the workers split the stream and each message is taken once.
    flow
        The flow name, part of the stable client id ``{client_id}-{flow}-w{worker_index}``.
    stop
        Optional event: once set, each partition hands over what it has queued and ends
        (EOF). For tests and embedding; a live flow runs until interrupted.
    """

    def __init__(
        self,
        settings: MqttSettings,
        topics: list[str],
        *,
        flow: str,
        stop: threading.Event | None = None,
    ) -> None:
        if not topics:
            raise ValueError(f"MqttSource for flow {flow!r}: no topics to subscribe to")
        self.settings = settings
        self.topics = list(topics)
        self.flow = flow
        self.stop = stop
        self._closing = False
        self._subscribed: set[int] = set()
        self._cond = threading.Condition()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MqttSourcePartition:
        self._closing = False
        with self._cond:
            self._subscribed.discard(worker_index)
        return _MqttSourcePartition(self, worker_index, worker_count)

    def _mark_subscribed(self, worker_index: int) -> None:
        with self._cond:
            self._subscribed.add(worker_index)
            self._cond.notify_all()

    def wait_subscribed(self, timeout: float = 10.0, workers: int = 1) -> bool:
        """Wait until *workers* partitions have subscribed (or resumed a session)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._subscribed) >= workers, timeout)


class MqttWalReceiver(_MqttSourcePartition):
    """A persistent-session subscriber that appends each message to *wal*; :meth:`ack_appended`
    then acknowledges what was appended.

    The client id is ``{client_id}-{flow}-w{index}`` (as :class:`MqttSource`'s worker
    *index*), so it resumes the same broker session. A message the broker marks as a
    redelivery (DUP) whose topic and payload the WAL's last records hold is acknowledged and
    not appended again. A failed append is logged and the message left unacknowledged (the
    broker redelivers it on the next connection).
    """

    def __init__(self, settings: MqttSettings, topics: list[str], *, flow: str, wal: Wal, index: int = 0,
                 held: HeldMeter = NOT_HELD) -> None:
        self.wal = wal
        self.redelivered = 0
        self.held = False
        self._held_meter = held  # the command's Metrics.held: 1 while the WAL disk is full
        self._pending: deque[tuple[str, bytes, int, int]] = deque()  # (topic, payload, qos, mid) held
        self._acks: list[tuple[int, int]] = []
        self._acks_lock = threading.Lock()
        super().__init__(MqttSource(settings, topics, flow=flow), index)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        with self._acks_lock:
            if self.held:  # keep the order: behind the ones waiting for room
                self._pending.append((msg.topic, payload, msg.qos, msg.mid))
                return
        if msg.dup and self.wal.holds_recent(msg.topic, payload):
            self.redelivered += 1
        else:
            try:
                self.wal.append(msg.topic, payload, time.time_ns(), msg.qos)
            except OSError as exc:
                self._hold(exc, (msg.topic, payload, msg.qos, msg.mid))
                return
        if msg.qos > 0:
            with self._acks_lock:
                self._acks.append((msg.mid, msg.qos))

    def _hold(self, exc: OSError, first: tuple[str, bytes, int, int]) -> None:
        """The WAL's disk is full (or failing): take no more messages (unacknowledged, the broker
        sends at most its in-flight window and queues the rest in our session), say so, and go on
        by ourselves once appends work again."""
        with self._acks_lock:
            self._pending.append(first)
            if self.held:
                return
            self.held = True
        self._held_meter.labels(reason="state_disk_full").set(1)
        log.error("mqtt source %s: HOLDING INPUT: cannot append to WAL %s (%s). No message is acknowledged until "
                  "there is room: the broker keeps them queued in this client's session (set max_queued_messages 0 "
                  "and a max_queued_bytes bound for no loss, docs/delivery.md); free disk under [state].dir and the "
                  "source goes on by itself", self.client_id, self.wal.dir, exc)
        threading.Thread(target=self._retry_pending, name="wal-room", daemon=True).start()

    def _retry_pending(self) -> None:
        since = time.monotonic()
        while not self.source._closing:
            time.sleep(1.0)
            with self._acks_lock:
                while self._pending:
                    topic, payload, qos, mid = self._pending[0]
                    try:
                        self.wal.append(topic, payload, time.time_ns(), qos)
                    except OSError:
                        break
                    self._pending.popleft()
                    if qos > 0:
                        self._acks.append((mid, qos))
                if self._pending:
                    continue
                self.held = False
            self._held_meter.labels(reason="state_disk_full").set(0)
            log.warning("mqtt source %s: WAL %s has room again after %.0f s; taking messages again",
                        self.client_id, self.wal.dir, time.monotonic() - since)
            return

    def ack_appended(self) -> int:
        """Acknowledge every message appended since the last call (after an fsync of the WAL
        when its policy says so); the reader calls it on each poll, so acknowledgements leave
        in bursts (one wake-up of paho's network thread per burst, not per message)."""
        with self._acks_lock:
            acks, self._acks = self._acks, []
        if acks:
            self.wal.sync()
            for mid, qos in acks:
                self.client.ack(mid, qos)
        return len(acks)

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        return self.source.wait_subscribed(timeout)


# --------------------------------------------------------------------------- publisher
class MqttPublisher:
    """A connected publisher; QoS 1/2 messages are kept until acked, never dropped.

    Parameters
    ----------
    settings
        Broker, credentials and TLS.
    client_id
        The MQTT client id.
    connect_timeout_s
        How long to wait for CONNACK before raising :class:`MqttError`.
    max_inflight
        Unacknowledged messages allowed before :meth:`publish` blocks.
    wait_connected
        False: do not wait for (or require) the first connection; paho keeps trying every
        ``reconnect_max_s`` at most and :meth:`publish` blocks until it succeeds (a flow's sink).
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        connect_timeout_s: float = 10.0,
        max_inflight: int = PUBLISH_INFLIGHT,
        wait_connected: bool = True,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.max_inflight = max_inflight
        self.published = 0
        self._outstanding = 0
        self._waiters = 0  # threads waiting on _cond (on_publish notifies only when some are)
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._closed = False
        self.where = f"{settings.host}:{settings.port}"
        self.client = _client(settings, client_id)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._unreachable_logged = False
        if not wait_connected:
            self.client.on_connect_fail = self._on_connect_fail
            self.client.connect_async(
                settings.host, settings.port, keepalive=settings.keepalive_s, clean_start=True,
                properties=_connect_properties(settings, persistent=False),
            )
            self.client.loop_start()
            return
        try:
            self.client.connect(
                settings.host, settings.port, keepalive=settings.keepalive_s, clean_start=True,
                properties=_connect_properties(settings, persistent=False),
            )
        except OSError as exc:
            raise MqttError(
                f"MQTT publisher {client_id}: cannot connect to {self.where}: {exc}; is the broker running "
                "(oddwatch services up) and [mqtt].host/port right?"
            ) from exc
        self.client.loop_start()
        if not self._connected.wait(connect_timeout_s) or self._refused:
            self.client.loop_stop()
            reason = self._refused or f"no CONNACK within {connect_timeout_s} s"
            raise MqttError(f"MQTT publisher {client_id}: connecting to {self.where} failed: {reason}")

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        # debug only: a flow's source reports the same broker's outage once
        if not self._unreachable_logged:
            self._unreachable_logged = True
            log.debug("mqtt publisher %s: broker %s unreachable; retrying every %.1f s at most, %d message(s) kept",
                      self.client_id, self.where, self.settings.reconnect_max_s, self._outstanding)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._unreachable_logged = False
        if reason.is_failure:
            self._refused = str(reason)
            log.error("mqtt publisher %s: %s refused the connection: %s", self.client_id, self.where, reason)
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._closed:
            log.warning("mqtt publisher %s: disconnected from %s (%s); reconnecting, %d message(s) kept",
                        self.client_id, self.where, reason, self._outstanding)

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _r: Any, _p: Any) -> None:
        with self._cond:
            self._outstanding -= 1
            if self._waiters:
                self._cond.notify_all()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish; blocks while ``max_inflight`` messages await their acknowledgement.

        QoS 1/2 messages published while disconnected are queued and sent on reconnect.
        A QoS 0 message that cannot be sent raises :class:`MqttError`.
        """
        while not self._connected.wait(1.0):  # the first connection (wait_connected=False): keeps the order
            if self._closed:
                break
        with self._cond:
            if self._closed:
                raise MqttError(f"MQTT publisher {self.client_id} is closed; cannot publish to {topic!r}")
            while self._outstanding >= self.max_inflight:
                self._waiters += 1
                try:
                    self._cond.wait(1.0)
                finally:
                    self._waiters -= 1
            self._outstanding += 1
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and (qos == 0 or info.rc != mqtt.MQTT_ERR_NO_CONN):
            with self._cond:
                self._outstanding -= 1
                self._cond.notify_all()
            raise MqttError(
                f"MQTT publisher {self.client_id}: publish to {topic!r} (qos {qos}) on {self.where} failed: "
                f"{mqtt.error_string(info.rc)}"
            )
        self.published += 1

    def wait_all(self, timeout: float = 10.0) -> bool:
        """Wait until every published message is acknowledged (QoS 1/2) or sent (QoS 0)."""
        with self._cond:
            self._waiters += 1
            try:
                return self._cond.wait_for(lambda: self._outstanding <= 0, timeout)
            finally:
                self._waiters -= 1

    @property
    def in_flight(self) -> int:
        return self._outstanding

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to *timeout* for in-flight messages, then disconnect."""
        if self._closed:
            return
        if not self.wait_all(timeout):
            log.error("mqtt publisher %s: closing with %d unacknowledged message(s) to %s",
                      self.client_id, self._outstanding, self.where)
        self._closed = True
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- sink
class _MqttSinkPartition(StatelessSinkPartition[Outgoing]):
    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher

    def write_batch(self, items: list[Outgoing]) -> None:
        for item in items:
            payload = valid_text(item.payload) if isinstance(item.payload, str) else item.payload
            try:
                self.publisher.publish(valid_text(item.topic), payload, qos=item.qos, retain=item.retain)
            except (TypeError, ValueError) as exc:  # paho refuses the topic or payload: skip this one message
                log.error("mqtt sink %s: message to %r not published: %s: %s", self.publisher.client_id,
                          item.topic[:200], type(exc).__name__, exc)

    def close(self) -> None:
        self.publisher.close()


class MqttSink(DynamicSink[Outgoing]):
    """Bytewax sink of :class:`~oddwatch.records.Outgoing`: one publisher per worker.

    Client ids are ``{client_id}-{flow}-out-w{worker_index}``.
    """

    def __init__(self, settings: MqttSettings, *, flow: str) -> None:
        self.settings = settings
        self.flow = flow

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MqttSinkPartition:
        client_id = f"{self.settings.client_id}-{self.flow}-out-w{worker_index}"
        return _MqttSinkPartition(MqttPublisher(self.settings, client_id, wait_connected=False))

