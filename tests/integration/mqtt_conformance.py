#!/usr/bin/python3
"""MQTT conformance checks against a running psagw, each named by the normative statement it
checks ([MQTT-x.y.z-n] of MQTT 5.0 / 3.1.1, or the section where the statement has no id).

Run by tests/integration/test_mqtt_conformance.sh with Debian's /usr/bin/python3 (it needs
python3-paho-mqtt). Clients: paho-mqtt, the library users have, for 3.1.1 and 5 over the plain
loopback listener (Python's ssl module has no TLS-PSK before 3.13, so the TLS-PSK side is
driven by mosquitto's clients in the shell script); and a small raw client (RawClient below)
where a check needs control paho does not give: stopping halfway through a QoS 2 exchange,
announcing a Topic Alias Maximum, staying silent past the keep-alive, reading CONNACK
properties.

    mqtt_conformance.py PORT GROUP     GROUP: main | keepalive | restart-before | restart-after
Prints "ok - ..." per check; exits 1 at the first failure.
"""
import queue
import socket
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
WAIT = 5.0


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print("ok - " + msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- paho clients ----------------------------------------------------------------------------

class Paho:
    """A paho client that records what it receives; v5 or 3.1.1."""

    def __init__(self, cid, v5=True, clean=True, expiry=None, will=None, keepalive=60):
        self.v5 = v5
        self.msgs = queue.Queue()
        self.subacks = queue.Queue()
        self.connected = threading.Event()
        self.rc = None
        self.flags = None
        self.disconnect_rc = None
        self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else clean)
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect
        if will:
            self.c.will_set(*will[:4], properties=will[4] if len(will) > 4 else None)
        props = None
        if v5 and expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
        if v5:
            self.c.connect(HOST, PORT, keepalive, clean_start=clean, properties=props)
        else:
            self.c.connect(HOST, PORT, keepalive)
        self.c.loop_start()
        check(self.connected.wait(WAIT), "%s: no CONNACK" % cid)

    def _on_connect(self, c, u, flags, rc, props=None):
        self.flags = flags
        self.rc = rc
        self.connected.set()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.subacks.put(granted)

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnect_rc = rc

    def sub(self, topic, qos=0, no_local=False, rap=False, rh=0, sub_id=None):
        if self.v5:
            props = None
            if sub_id:
                props = Properties(PacketTypes.SUBSCRIBE)
                props.SubscriptionIdentifier = sub_id
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap,
                                    retainHandling=rh)
            self.c.subscribe(topic, options=opts, properties=props)
        else:
            self.c.subscribe(topic, qos)
        try:
            granted = self.subacks.get(timeout=WAIT)
        except queue.Empty:
            fail("no SUBACK for " + topic)
        g = granted[0]
        return g.value if hasattr(g, "value") else g

    def pub(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        info.wait_for_publish(WAIT)
        check(info.is_published(), "publish to %s not completed" % topic)

    def get(self, timeout=WAIT):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            return None

    def none(self, timeout=0.5):
        m = self.get(timeout)
        return m is None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def props(**kw):
    p = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


# ---- a raw MQTT 5 client ---------------------------------------------------------------------

def varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def utf8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


PROP_U8 = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
PROP_U16 = {0x13, 0x21, 0x22, 0x23}
PROP_U32 = {0x02, 0x11, 0x18, 0x27}
PROP_STR = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}


def parse_props(b, i):
    n, i = read_varint(b, i)
    end = i + n
    out = {}
    while i < end:
        pid = b[i]
        i += 1
        if pid in PROP_U8:
            out[pid] = b[i]
            i += 1
        elif pid in PROP_U16:
            out[pid] = struct.unpack(">H", b[i:i + 2])[0]
            i += 2
        elif pid in PROP_U32:
            out[pid] = struct.unpack(">I", b[i:i + 4])[0]
            i += 4
        elif pid == 0x0B:
            v, i = read_varint(b, i)
            out.setdefault(pid, []).append(v)
        elif pid == 0x26:
            k = struct.unpack(">H", b[i:i + 2])[0]
            key = b[i + 2:i + 2 + k]
            i += 2 + k
            k = struct.unpack(">H", b[i:i + 2])[0]
            out.setdefault(pid, []).append((key, b[i + 2:i + 2 + k]))
            i += 2 + k
        elif pid in PROP_STR:
            k = struct.unpack(">H", b[i:i + 2])[0]
            out[pid] = b[i + 2:i + 2 + k]
            i += 2 + k
        else:
            fail("raw client: unknown property 0x%02x" % pid)
    return out, end


def read_varint(b, i):
    n, mul = 0, 1
    while True:
        n += (b[i] & 0x7F) * mul
        mul *= 128
        i += 1
        if not b[i - 1] & 0x80:
            return n, i


class Packet:
    def __init__(self, first, body):
        self.type = first >> 4
        self.flags = first & 15
        self.body = body
        self.props = {}


class RawClient:
    """MQTT 5 over a plain socket, one packet at a time, nothing automatic."""

    def __init__(self, cid, clean=True, expiry=0, keepalive=60, topic_alias_max=0,
                 receive_max=0):
        self.s = socket.create_connection((HOST, PORT), timeout=WAIT)
        p = b""
        if expiry:
            p += b"\x11" + struct.pack(">I", expiry)
        if topic_alias_max:
            p += b"\x22" + struct.pack(">H", topic_alias_max)
        if receive_max:
            p += b"\x21" + struct.pack(">H", receive_max)
        vh = utf8("MQTT") + b"\x05" + bytes([0x02 if clean else 0]) + struct.pack(">H", keepalive)
        self.send(0x10, vh + varint(len(p)) + p + utf8(cid))
        self.connack = self.expect(2)
        self.session_present = self.connack.body[0] & 1
        self.reason = self.connack.body[1]
        self.connack.props, _ = parse_props(self.connack.body, 2)

    def send(self, first, body):
        self.s.sendall(bytes([first]) + varint(len(body)) + body)

    def read(self, timeout=WAIT):
        self.s.settimeout(timeout)
        try:
            first = self.s.recv(1)
            if not first:
                return None
            n, mul = 0, 1
            while True:
                b = self.s.recv(1)[0]
                n += (b & 0x7F) * mul
                mul *= 128
                if not b & 0x80:
                    break
            body = b""
            while len(body) < n:
                chunk = self.s.recv(n - len(body))
                if not chunk:
                    return None
                body += chunk
            return Packet(first[0], body)
        except socket.timeout:
            return "timeout"
        except ConnectionResetError:
            return None

    def expect(self, ptype, timeout=WAIT):
        p = self.read(timeout)
        check(isinstance(p, Packet), "raw client: expected packet type %d, got %r" % (ptype, p))
        check(p.type == ptype, "raw client: expected packet type %d, got %d" % (ptype, p.type))
        return p

    def publish_in(self, timeout=WAIT):
        """Reads a PUBLISH: (topic, qos, dup, retain, packet_id, props, payload)."""
        p = self.expect(3, timeout)
        qos = (p.flags >> 1) & 3
        tl = struct.unpack(">H", p.body[:2])[0]
        topic = p.body[2:2 + tl]
        i = 2 + tl
        pid = None
        if qos:
            pid = struct.unpack(">H", p.body[i:i + 2])[0]
            i += 2
        pr, i = parse_props(p.body, i)
        return topic, qos, bool(p.flags & 8), bool(p.flags & 1), pid, pr, p.body[i:]

    def subscribe(self, topic, qos, pid=1, sub_id=None, options=0):
        pr = b"\x0b" + varint(sub_id) if sub_id else b""
        self.send(0x82, struct.pack(">H", pid) + varint(len(pr)) + pr + utf8(topic) +
                  bytes([qos | options]))
        sa = self.expect(9)
        pl, i = parse_props(sa.body, 2)
        return sa.body[i:]

    def ack(self, ptype, pid, reason=None):
        flags = 2 if ptype == 6 else 0
        body = struct.pack(">H", pid) + (bytes([reason]) if reason is not None else b"")
        self.send((ptype << 4) | flags, body)

    def ack_in(self, ptype):
        p = self.expect(ptype)
        reason = p.body[2] if len(p.body) > 2 else 0
        return struct.unpack(">H", p.body[:2])[0], reason

    def drop(self):
        """Goes away without DISCONNECT (the will applies)."""
        self.s.close()

    def disconnect(self, reason=0):
        self.send(0xE0, bytes([reason, 0]))
        self.s.close()


# ---- the checks ------------------------------------------------------------------------------

def connack_properties():
    r = RawClient("raw-connack")
    pr = r.connack.props
    check(r.reason == 0, "CONNACK reason 0x%02x" % r.reason)
    check(0x24 not in pr or pr[0x24] == 2, "Maximum QoS %r: QoS 2 is supported" % pr.get(0x24))
    check(pr.get(0x25, 1) == 1, "Retain Available says no")
    check(pr.get(0x2A) == 1, "Shared Subscription Available is %r" % pr.get(0x2A))
    check(pr.get(0x28, 1) == 1 and pr.get(0x29, 1) == 1, "wildcards / sub ids unavailable")
    r.disconnect()
    ok("[MQTT-3.2.2-9] [MQTT-3.2.2-12] CONNACK: no Maximum QoS (QoS 2 supported), Retain, "
       "Wildcard, Subscription Identifier and Shared Subscription Available")


def qos_matrix():
    for v5 in (True, False):
        sub = Paho("qm-sub-%d" % v5, v5=v5)
        pub = Paho("qm-pub-%d" % v5, v5=v5)
        for sq in (0, 1, 2):
            check(sub.sub("qm/%d/%d" % (v5, sq), sq) == sq, "granted QoS differs from %d" % sq)
        for sq in (0, 1, 2):
            for pq in (0, 1, 2):
                pub.pub("qm/%d/%d" % (v5, sq), b"m-%d-%d" % (sq, pq), pq)
                m = sub.get()
                check(m is not None, "v%s sub QoS %d pub QoS %d: nothing" % (v5, sq, pq))
                check(m.qos == min(sq, pq), "delivered at QoS %d, not %d" % (m.qos, min(sq, pq)))
                check(m.payload == b"m-%d-%d" % (sq, pq), "payload %r" % m.payload)
        check(sub.none(), "a message arrived twice")
        sub.close()
        pub.close()
        ok("[MQTT-3.8.4-6] [MQTT-3.3.5-1] %s: publish QoS 0/1/2 x subscription QoS 0/1/2, each "
           "delivered once at the lower of the two" % ("MQTT 5" if v5 else "MQTT 3.1.1"))


def dollar_topics():
    allc = Paho("dollar-all")
    allc.sub("#")
    allc.sub("+/x")
    dol = Paho("dollar-sub")
    dol.sub("$test/#")
    pub = Paho("dollar-pub")
    pub.pub("$test/x", b"d", 1)
    m = dol.get()
    check(m is not None and m.topic == "$test/x", "a $test/# subscriber did not get $test/x")
    check(allc.none(), "a # or +/x subscription matched $test/x")
    for c in (allc, dol, pub):
        c.close()
    ok("[MQTT-4.7.2-1] a topic starting with $ matches no filter starting with # or +")


def retained():
    pub = Paho("ret-pub")
    pub.pub("ret/a", b"one", 1, retain=True)
    pub.pub("ret/a", b"two", 1, retain=True)
    s = Paho("ret-sub1")
    s.sub("ret/#", 1)
    m = s.get()
    check(m is not None and m.payload == b"two" and m.retain, "retained: %r" % (m and m.payload))
    check(s.none(), "more than the last retained message")
    s.close()
    ok("[MQTT-3.3.1-5] a retained message is stored, the next one replaces it, a new "
       "subscriber gets it with RETAIN 1")
    pub.pub("ret/a", b"", 1, retain=True)
    s = Paho("ret-sub2")
    s.sub("ret/#", 1)
    check(s.none(), "a zero-byte retained message did not clear the topic")
    s.close()
    ok("[MQTT-3.3.1-6] [MQTT-3.3.1-7] a zero-byte retained message clears the topic and is "
       "not stored")
    # Retain Handling
    pub.pub("rh/a", b"kept", 1, retain=True)
    for rh, want_first, want_again in ((0, True, True), (1, True, False), (2, False, False)):
        s = Paho("rh-%d" % rh)
        s.sub("rh/#", 1, rh=rh)
        got = s.get(1.0)
        check((got is not None) == want_first, "Retain Handling %d at subscribe: %r" % (rh, got))
        s.sub("rh/#", 1, rh=rh)
        got = s.get(1.0)
        check((got is not None) == want_again, "Retain Handling %d again: %r" % (rh, got))
        s.close()
    pub.pub("rh/a", b"", 1, retain=True)
    ok("[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] Retain Handling 0 sends at every "
       "subscribe, 1 only for a new subscription, 2 never")
    # Retain As Published
    plain, rap = Paho("rap-0"), Paho("rap-1")
    plain.sub("rap/#", 1, rap=False)
    rap.sub("rap/#", 1, rap=True)
    pub.pub("rap/x", b"r", 1, retain=True)
    a, b = plain.get(), rap.get()
    check(a is not None and not a.retain, "RAP 0: RETAIN set on a live delivery")
    check(b is not None and b.retain, "RAP 1: RETAIN not kept")
    pub.pub("rap/x", b"", 1, retain=True)
    for c in (plain, rap, pub):
        c.close()
    ok("[MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published: RETAIN cleared unless the "
       "subscription asks to keep it")


def no_local():
    c = Paho("nolocal")
    c.sub("nl/#", 1, no_local=True)
    other = Paho("nolocal-other")
    other.sub("nl/#", 1)
    c.pub("nl/x", b"mine", 1)
    check(c.none(), "No Local: the publisher got its own message")
    check(other.get() is not None, "another subscriber did not get it")
    c.close()
    other.close()
    ok("[MQTT-3.8.3-3] No Local: a message is not sent back to its publisher's connection")


def message_expiry():
    s = Paho("exp-sub", clean=True, expiry=300)
    s.sub("exp/#", 1)
    s.close()
    pub = Paho("exp-pub")
    pub.pub("exp/short", b"short", 1, props=props(MessageExpiryInterval=1))
    pub.pub("exp/long", b"long", 1, props=props(MessageExpiryInterval=60))
    pub.pub("exp/ret", b"ret", 1, retain=True, props=props(MessageExpiryInterval=1))
    time.sleep(2.2)
    s = Paho("exp-sub", clean=False, expiry=300)
    m = s.get()
    check(m is not None and m.payload == b"long", "expected only the long-lived message: %r" %
          (m and m.payload))
    left = m.properties.MessageExpiryInterval
    check(0 < left < 60, "Message Expiry Interval not lowered by the wait: %r" % left)
    check(s.none(), "an expired queued message was delivered")
    s.close()
    ok("[MQTT-3.3.2-5] [MQTT-3.3.2-6] an expired queued message is not delivered; a live one "
       "carries its remaining time (%d s of 60)" % left)
    r = Paho("exp-ret")
    r.sub("exp/ret", 1)
    check(r.none(), "an expired retained message was delivered")
    r.close()
    pub.close()
    ok("[MQTT-3.3.2-5] an expired retained message is not sent to a new subscriber")


def request_response():
    s = Paho("rr-sub")
    s.sub("rr/#", 1)
    pub = Paho("rr-pub")
    p = props(ResponseTopic="rr/reply/42", CorrelationData=b"\x00\x01corr",
              ContentType="application/json", PayloadFormatIndicator=1)
    p.UserProperty = [("b", "2"), ("a", "1"), ("b", "3")]
    pub.pub("rr/req", b"{}", 1, props=p)
    m = s.get()
    check(m is not None, "request not delivered")
    mp = m.properties
    check(mp.ResponseTopic == "rr/reply/42", "Response Topic %r" % mp.ResponseTopic)
    check(mp.CorrelationData == b"\x00\x01corr", "Correlation Data %r" % mp.CorrelationData)
    check(mp.ContentType == "application/json", "Content Type %r" % mp.ContentType)
    check(mp.PayloadFormatIndicator == 1, "Payload Format Indicator")
    check(mp.UserProperty == [("b", "2"), ("a", "1"), ("b", "3")], "User Properties %r" %
          mp.UserProperty)
    s.close()
    pub.close()
    ok("[MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] Response "
       "Topic, Correlation Data, Content Type, Payload Format and User Properties (in order) "
       "reach the subscriber unaltered")


def will_delay():
    w = Paho("will-watch")
    w.sub("will/#", 1)
    # reconnecting within the Will Delay: no will [MQTT-3.1.3-9]
    r = RawWill("will-a", delay=2, expiry=30)
    r.drop()
    time.sleep(0.3)
    r2 = RawClient("will-a", clean=False, expiry=30)
    check(w.none(2.5), "the will was published though the client came back in time")
    r2.disconnect()
    ok("[MQTT-3.1.3-9] a client that reconnects before its Will Delay Interval has no will "
       "published")
    # the session ends (expiry 1 s) before the will delay (30 s): the will goes then
    r = RawWill("will-b", delay=30, expiry=1)
    t0 = time.time()
    r.drop()
    m = w.get(4.0)
    check(m is not None and m.payload == b"gone-will-b", "no will when the session ended")
    took = time.time() - t0
    check(took < 3.5, "the will came %.1f s after the session ended" % took)
    w.close()
    ok("[MQTT-3.1.2-8] section 3.1.3.2.2: the will is published when the session ends if that "
       "comes before the Will Delay Interval (%.1f s)" % took)


class RawWill(RawClient):
    def __init__(self, cid, delay, expiry):
        self.s = socket.create_connection((HOST, PORT), timeout=WAIT)
        p = b"\x11" + struct.pack(">I", expiry)
        wp = b"\x18" + struct.pack(">I", delay)
        vh = utf8("MQTT") + b"\x05" + bytes([0x02 | 0x04 | 0x08]) + struct.pack(">H", 60)
        payload = utf8(cid) + varint(len(wp)) + wp + utf8("will/" + cid) + utf8("gone-" + cid)
        self.send(0x10, vh + varint(len(p)) + p + payload)
        ca = self.expect(2)
        check(ca.body[1] == 0, "will client refused")


def qos2_outbound_resume():
    """A subscriber that stops halfway through a QoS 2 exchange, twice."""
    sub = RawClient("q2-sub", clean=True, expiry=300)
    check(sub.subscribe("q2/#", 2) == b"\x02", "QoS 2 not granted")
    pub = Paho("q2-pub")
    pub.pub("q2/a", b"first", 2)
    topic, qos, dup, _, pid1, _, payload = sub.publish_in()
    check(qos == 2 and not dup and payload == b"first", "first QoS 2 delivery")
    sub.ack(5, pid1)  # PUBREC
    rel, _ = sub.ack_in(6)  # PUBREL
    check(rel == pid1, "PUBREL for another id")
    sub.drop()  # no PUBCOMP
    sub = RawClient("q2-sub", clean=False, expiry=300)
    check(sub.session_present == 1, "session not present")
    rel, _ = sub.ack_in(6)
    check(rel == pid1, "after the reconnect the PUBREL of %d did not come first" % pid1)
    sub.ack(7, pid1)  # PUBCOMP
    pub.pub("q2/a", b"second", 2)
    _, qos, dup, _, pid2, _, payload = sub.publish_in()
    check(payload == b"second" and not dup, "second delivery")
    sub.drop()  # no PUBREC
    sub = RawClient("q2-sub", clean=False, expiry=300)
    _, qos, dup, _, pid, _, payload = sub.publish_in()
    check(payload == b"second" and dup and pid == pid2 and qos == 2,
          "the unreceived PUBLISH did not come again with DUP and its id")
    sub.ack(5, pid)
    check(sub.ack_in(6)[0] == pid, "no PUBREL")
    sub.ack(7, pid)
    check(sub.read(0.7) == "timeout", "more than was owed after the exchange")
    sub.disconnect()
    pub.close()
    ok("[MQTT-4.4.0-1] [MQTT-4.3.3-5] [MQTT-3.3.1-1] QoS 2 to a subscriber that reconnects: the "
       "PUBREL again (not the PUBLISH) once released, the PUBLISH again with DUP and its "
       "packet id before PUBREC; each message received once")
    # a PUBREC with a failure code ends the exchange: no PUBREL, nothing again
    sub = RawClient("q2-refuse", clean=True)
    sub.subscribe("q2r/#", 2)
    pub = Paho("q2-pub2")
    pub.pub("q2r/a", b"no", 2)
    _, _, _, _, pid, _, _ = sub.publish_in()
    sub.ack(5, pid, 0x80)
    check(sub.read(0.7) == "timeout", "a PUBREL followed a refusing PUBREC")
    sub.disconnect()
    pub.close()
    ok("[MQTT-4.3.3-4] section 4.3.3: a PUBREC with a Reason Code of 0x80 or more ends the "
       "exchange")


def topic_aliases():
    r = RawClient("ta-sub", topic_alias_max=2)
    r.subscribe("ta/#", 0)
    none = RawClient("ta-none")
    none.subscribe("ta/#", 0)
    pub = Paho("ta-pub")
    seen = {}
    for t in ("ta/one", "ta/one", "ta/two", "ta/three", "ta/one", "ta/three"):
        pub.pub(t, b"v", 0)
        topic, _, _, _, _, pr, _ = r.publish_in()
        alias = pr.get(0x23)
        check(alias is not None and 1 <= alias <= 2, "alias %r beyond the client's 2" % alias)
        if topic:
            seen[alias] = topic
        check(seen.get(alias) == t.encode(), "alias %d stands for %r, not %s" %
              (alias, seen.get(alias), t))
        topic2, _, _, _, _, pr2, _ = none.publish_in()
        check(0x23 not in pr2 and topic2 == t.encode(), "an alias to a client that allows none")
    r.disconnect()
    none.disconnect()
    pub.close()
    ok("[MQTT-3.1.2-26] [MQTT-3.1.2-27] [MQTT-3.3.2-9] topic aliases only to a client that "
       "allows them, never above its Topic Alias Maximum, each standing for the topic it was "
       "last sent with")


def shared_subscriptions():
    s = RawClient("sh-bad")
    for bad in ("$share/", "$share//x", "$share/g", "$share/g+/x"):
        code = s.subscribe(bad, 1)
        check(code == b"\x8f", "%s: SUBACK 0x%s, not 0x8f" % (bad, code.hex()))
    s.disconnect()
    ok("[MQTT-4.8.2-1] [MQTT-4.8.2-2] a $share filter without a share name or topic filter, or "
       "with '+' or '#' in the name, gets 0x8F")
    s = RawClient("sh-nolocal")
    s.send(0x82, struct.pack(">H", 1) + b"\x00" + utf8("$share/g/x") + bytes([1 | 4]))
    p = s.read()
    check(isinstance(p, Packet) and p.type == 14 and p.body[0] == 0x82,
          "No Local on a shared subscription: %r" % (p if not isinstance(p, Packet) else p.type))
    ok("[MQTT-3.8.3-4] No Local on a shared subscription is a protocol error (DISCONNECT 0x82)")
    # round robin, subscription identifiers, a separate copy for a non-shared subscription
    pub = Paho("sh-pub")
    pub.pub("sh/r", b"retained", 1, retain=True)
    members = [Paho("sh-m%d" % i) for i in range(3)]
    for i, m in enumerate(members):
        check(m.sub("$share/grp/sh/#", 1, sub_id=10 + i) == 1, "shared SUBACK")
    own = Paho("sh-own")
    own.sub("sh/#", 1, sub_id=99)
    own.get(1.0)  # its retained copy
    for m in members:
        check(m.none(0.3), "a shared subscription got a retained message")
    ok("section 4.8.2: no retained messages for a new shared subscription")
    for k in range(30):
        pub.pub("sh/x", b"%d" % k, 1)
    got = []
    for i, m in enumerate(members):
        n = 0
        while True:
            msg = m.get(0.5)
            if msg is None:
                break
            check(msg.properties.SubscriptionIdentifier == [10 + i],
                  "member %d got ids %r" % (i, msg.properties.SubscriptionIdentifier))
            got.append(msg.payload)
            n += 1
        check(n == 10, "member %d got %d of 30, not 10" % (i, n))
    check(sorted(got) == sorted(b"%d" % k for k in range(30)), "not each message once")
    mine = 0
    while own.get(0.3) is not None:
        mine += 1
    check(mine == 30, "the non-shared subscriber got %d of 30" % mine)
    for c in members + [own]:
        c.close()
    pub.pub("sh/r", b"", 1, retain=True)
    pub.close()
    ok("[MQTT-3.3.4-3] section 4.8.2: 30 messages to a group of 3, 10 each round robin, each "
       "once, with the member's Subscription Identifier; a non-shared subscriber gets all 30")
    # MQTT 3.1.1 members: a clean-session member leaves the group at disconnect, a persistent
    # one stays and gets its turn's messages when it returns
    keep = Paho("sh311-keep", v5=False, clean=False)
    keep.sub("$share/g311/s311/#", 1)
    keep.close()
    clean = Paho("sh311-clean", v5=False, clean=True)
    check(clean.sub("$share/g311/s311/#", 1) == 1, "3.1.1 shared SUBACK")
    pub = Paho("sh311-pub", v5=False)
    for k in range(4):
        pub.pub("s311/x", b"a%d" % k, 1)
    n = 0
    while clean.get(0.5) is not None:
        n += 1
    check(n == 4, "the connected member got %d of 4 while the other was away" % n)
    clean.close()
    time.sleep(0.2)
    for k in range(3):
        pub.pub("s311/x", b"b%d" % k, 1)
    keep = Paho("sh311-keep", v5=False, clean=False)
    check(keep.flags.get("session present") == 1, "3.1.1 persistent session not present")
    got = []
    while True:
        m = keep.get(0.7)
        if m is None:
            break
        got.append(m.payload)
    check(got == [b"b0", b"b1", b"b2"], "the persistent member got %r" % got)
    keep.close()
    pub.close()
    ok("MQTT 3.1.1 $share: a connected member is preferred; a clean-session member leaves the "
       "group when it goes; a persistent one keeps its membership and its queued messages")


def keepalive():
    r = RawClient("ka-zero", keepalive=0)
    ska = r.connack.props.get(0x13)
    check(ska == 2, "Server Keep Alive %r for keep alive 0 (max_keepalive 2)" % ska)
    r2 = RawClient("ka-long", keepalive=600)
    check(r2.connack.props.get(0x13) == 2, "Server Keep Alive for 600")
    t0 = time.time()
    p = r.read(8)
    took = time.time() - t0
    check(isinstance(p, Packet) and p.type == 14 and p.body[0] == 0x8D,
          "silent past 1.5 x Server Keep Alive: %r" % p)
    check(2.5 <= took <= 6, "closed after %.1f s (Server Keep Alive 2)" % took)
    ok("[MQTT-3.1.2-22] section 3.2.2.3.14: a client asking for no keep-alive or a longer one "
       "gets Server Keep Alive = max_keepalive and is closed (0x8D) after 1.5 times it of "
       "silence (%.1f s)" % took)


def restart_before():
    r = RawClient("persist", clean=True, expiry=600)
    r.subscribe("persist/#", 2)
    r.disconnect()
    ok("a persistent session (expiry 600 s) with a QoS 2 subscription, before the restart")


def restart_after():
    r = RawClient("persist", clean=False, expiry=600)
    check(r.session_present == 0, "a session survived the restart: docs/mqtt.md says it does not")
    r.disconnect()
    ok("section 3.2.2.1.1: after a gateway restart the session is not present, and CONNACK "
       "says so (sessions live in memory, docs/mqtt.md)")


GROUPS = {
    "main": [connack_properties, qos_matrix, dollar_topics, retained, no_local, message_expiry,
             request_response, will_delay, qos2_outbound_resume, topic_aliases,
             shared_subscriptions],
    "keepalive": [keepalive],
    "restart-before": [restart_before],
    "restart-after": [restart_after],
}

for check_fn in GROUPS[sys.argv[2]]:
    check_fn()
