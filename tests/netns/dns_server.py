#!/usr/bin/env python3
"""A small authoritative DNS server for tests: answers A and AAAA from a zone given on the
command line, and can misbehave per name and record type (slow, SERVFAIL, NXDOMAIN, silence),
so resolver tests can exercise RFC 8305 timing without a real DNS hierarchy.

Usage:
    dns_server.py [--address 127.0.0.1] [--port 53] (--zone FILE | --zone-json TEXT)

The zone (a JSON object, from a file or inline) maps each name to its records and behaviours:
    {
      "dual.test":      {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
      "slow-aaaa.test": {"A": ["192.0.2.2"], "AAAA": ["2001:db8::2"],
                         "behaviour": {"AAAA": {"delay-ms": 400}}},
      "broken.test":    {"A": ["192.0.2.3"],
                         "behaviour": {"AAAA": {"servfail": true}, "A": {"drop": true}}}
    }
Behaviours, per name and record type ("A" or "AAAA"):
    delay-ms: N    answer N milliseconds late (combines with servfail/nxdomain)
    servfail: true answer SERVFAIL
    nxdomain: true answer NXDOMAIN
    drop: true     never answer
A name in the zone without records of the asked type gets an empty NOERROR answer (NODATA);
any other name gets NXDOMAIN. Names match case-insensitively, with or without a trailing dot.

Serves UDP and TCP (RFC 1035 length-prefixed) on the same address and port. Prints "ready" on
stdout once both sockets are bound (tests wait for that line rather than sleeping), and the
bound address on stderr. Malformed packets are ignored, or answered FORMERR when the header is
readable; nothing a client sends stops the server. Python 3 standard library only.
"""

import argparse
import ipaddress
import json
import socket
import struct
import sys
import threading

QTYPE_A = 1
QTYPE_AAAA = 28
CLASS_IN = 1
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP = 0, 1, 2, 3, 4
TYPE_NAMES = {QTYPE_A: "A", QTYPE_AAAA: "AAAA"}
BEHAVIOURS = {"delay-ms", "servfail", "nxdomain", "drop"}


class BadQuery(Exception):
    """A query we cannot parse; `header_ok` says whether FORMERR can be sent back."""


def normalise(name):
    return name.rstrip(".").lower()


def load_zone(text, origin):
    """Validates the zone up front so a typo fails the test at start, not as a wrong answer."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        sys.exit(f"dns_server: {origin}: invalid JSON: {e}")
    if not isinstance(raw, dict):
        sys.exit(f"dns_server: {origin}: the zone must be a JSON object of names")
    zone = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            sys.exit(f"dns_server: {origin}: {name}: expected an object")
        records = {QTYPE_A: [], QTYPE_AAAA: []}
        behaviour = {QTYPE_A: {}, QTYPE_AAAA: {}}
        for key, value in entry.items():
            if key in ("A", "AAAA"):
                qtype = QTYPE_A if key == "A" else QTYPE_AAAA
                family = ipaddress.IPv4Address if key == "A" else ipaddress.IPv6Address
                if not isinstance(value, list):
                    sys.exit(f"dns_server: {origin}: {name}.{key}: expected a list")
                for text_addr in value:
                    try:
                        records[qtype].append(family(text_addr).packed)
                    except (ValueError, TypeError):
                        sys.exit(f"dns_server: {origin}: {name}.{key}: bad address {text_addr!r}")
            elif key == "behaviour":
                if not isinstance(value, dict):
                    sys.exit(f"dns_server: {origin}: {name}.behaviour: expected an object")
                for type_name, rules in value.items():
                    if type_name not in ("A", "AAAA") or not isinstance(rules, dict):
                        sys.exit(f"dns_server: {origin}: {name}.behaviour.{type_name}: "
                                 "expected A or AAAA with an object")
                    unknown = set(rules) - BEHAVIOURS
                    if unknown:
                        sys.exit(f"dns_server: {origin}: {name}.behaviour.{type_name}: unknown "
                                 f"{sorted(unknown)} (known: {sorted(BEHAVIOURS)})")
                    delay = rules.get("delay-ms", 0)
                    if not isinstance(delay, (int, float)) or delay < 0:
                        sys.exit(f"dns_server: {origin}: {name}: delay-ms must be >= 0")
                    behaviour[QTYPE_A if type_name == "A" else QTYPE_AAAA] = rules
            else:
                sys.exit(f"dns_server: {origin}: {name}: unknown key {key!r} "
                         "(known: A, AAAA, behaviour)")
        zone[normalise(name)] = (records, behaviour)
    return zone


def parse_query(packet):
    """Returns (id, flags, question bytes, name, qtype, qclass); raises BadQuery."""
    if len(packet) < 12:
        raise BadQuery(False)
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000:  # a response, not a query: never answer (avoids loops)
        raise BadQuery(False)
    if qdcount != 1:
        raise BadQuery(True)
    labels, pos = [], 12
    while True:
        if pos >= len(packet):
            raise BadQuery(True)
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(packet):  # no compression in a question
            raise BadQuery(True)
        labels.append(packet[pos:pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(packet):
        raise BadQuery(True)
    qtype, qclass = struct.unpack("!HH", packet[pos:pos + 4])
    return qid, flags, packet[12:pos + 4], ".".join(labels), qtype, qclass


def build_reply(qid, flags, question, rcode, addresses=(), qtype=0):
    opcode_rd = flags & 0x7900  # keep opcode and RD from the query
    out_flags = 0x8000 | opcode_rd | 0x0400 | rcode  # QR, AA
    header = struct.pack("!HHHHHH", qid, out_flags, 1 if question else 0, len(addresses), 0, 0)
    body = bytearray(question)
    for packed in addresses:  # the owner name is a pointer to the question's name (offset 12)
        body += struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, 60, len(packed)) + packed
    return header + bytes(body)


def formerr(packet):
    qid, flags = struct.unpack("!HH", packet[:4])
    return build_reply(qid, flags, b"", RCODE_FORMERR)


class Server:
    def __init__(self, zone):
        self.zone = zone

    def answer(self, packet):
        """Returns (reply bytes or None to stay silent, delay in seconds)."""
        try:
            qid, flags, question, name, qtype, qclass = parse_query(packet)
        except BadQuery as e:
            return (formerr(packet) if e.args and e.args[0] else None), 0.0
        if (flags >> 11) & 0xF != 0:
            return build_reply(qid, flags, question, RCODE_NOTIMP), 0.0
        entry = self.zone.get(normalise(name))
        if entry is None:
            return build_reply(qid, flags, question, RCODE_NXDOMAIN), 0.0
        records, behaviour = entry
        rules = behaviour.get(qtype, {})
        delay = float(rules.get("delay-ms", 0)) / 1000.0
        if rules.get("drop"):
            return None, 0.0
        if rules.get("servfail"):
            return build_reply(qid, flags, question, RCODE_SERVFAIL), delay
        if rules.get("nxdomain"):
            return build_reply(qid, flags, question, RCODE_NXDOMAIN), delay
        found = records.get(qtype, []) if qclass == CLASS_IN else []
        return build_reply(qid, flags, question, RCODE_NOERROR, found, qtype), delay

    def serve_udp(self, sock):
        while True:
            try:
                packet, peer = sock.recvfrom(65535)
            except OSError:
                continue
            try:
                reply, delay = self.answer(packet)
            except Exception as e:  # never let one packet stop the server
                print(f"dns_server: ignored a packet: {e!r}", file=sys.stderr, flush=True)
                continue
            if reply is None:
                continue
            if delay > 0:
                threading.Timer(delay, self._send_udp, (sock, reply, peer)).start()
            else:
                self._send_udp(sock, reply, peer)

    @staticmethod
    def _send_udp(sock, reply, peer):
        try:
            sock.sendto(reply, peer)
        except OSError:
            pass

    def serve_tcp(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._tcp_connection, args=(conn,), daemon=True).start()

    def _tcp_connection(self, conn):
        event = threading.Event()
        with conn:
            conn.settimeout(10)
            try:
                while True:
                    size = self._recv_exact(conn, 2)
                    if size is None:
                        return
                    packet = self._recv_exact(conn, struct.unpack("!H", size)[0])
                    if packet is None:
                        return
                    reply, delay = self.answer(packet)
                    if reply is None:
                        continue
                    if delay > 0:
                        event.wait(delay)
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except Exception:
                return

    @staticmethod
    def _recv_exact(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data


def main():
    parser = argparse.ArgumentParser(description="Authoritative test DNS server (A/AAAA).")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=53)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--zone", help="JSON zone file")
    source.add_argument("--zone-json", help="the JSON zone itself")
    args = parser.parse_args()

    if args.zone:
        try:
            with open(args.zone, encoding="utf-8") as f:
                zone = load_zone(f.read(), args.zone)
        except OSError as e:
            sys.exit(f"dns_server: cannot read {args.zone}: {e.strerror}")
    else:
        zone = load_zone(args.zone_json, "--zone-json")

    family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
    try:
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.bind((args.address, args.port))
        port = udp.getsockname()[1]  # with --port 0, TCP takes the same port as UDP
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((args.address, port))
        tcp.listen(16)
    except OSError as e:
        sys.exit(f"dns_server: cannot bind {args.address}:{args.port}: {e.strerror}")

    server = Server(zone)
    threading.Thread(target=server.serve_tcp, args=(tcp,), daemon=True).start()
    print(f"dns_server: serving {len(zone)} names on {args.address}:{port} (udp, tcp)",
          file=sys.stderr, flush=True)
    print("ready", flush=True)
    try:
        server.serve_udp(udp)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
