"""What a tcpdump filter needs from the per-file index: the files that may hold a match.

The filter itself always runs in C (libpcap's compiler, pcap_offline_filter), so this module
only decides which files need not be opened, and errs on the side of opening: a plan is a tree of
`Any` (the index cannot tell: open the file), `Addr`, `Net`, `Port`, `Proto` leaves under
`And`/`Or`. Anything it does not understand (a `not`, `ether host`, byte offsets such as
`tcp[tcpflags]`, `vlan 100`, `less`, names to resolve, ...) is `Any`; an encapsulation keyword
(`mpls`, `pppoes`, `geneve`, `vxlan`) anywhere turns the whole plan into `Any`, since the index
does not look inside those. tcpdump's shorthand is followed: a bare id after `and`/`or` takes the
qualifiers of the primitive before it (`host A or B`, `port 80 or 443`).
"""

from __future__ import annotations

import ipaddress
import re

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Node:
    """An immutable plan node compared by type and fields (what a frozen dataclass gives, without
    importing dataclasses: `sluice extract` pays for every import at each query, issue 14)."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._fields()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(v) for v in self._fields())})"


class Any(_Node):
    __slots__ = ()


class Addr(_Node):
    __slots__ = ("addr",)
    addr: IpAddress

    def __init__(self, addr: IpAddress) -> None:
        super().__init__(addr)


class Net(_Node):
    __slots__ = ("net",)
    net: IpNetwork

    def __init__(self, net: IpNetwork) -> None:
        super().__init__(net)


class Port(_Node):
    __slots__ = ("protos", "low", "high")
    protos: tuple[int, ...]
    low: int
    high: int

    def __init__(self, protos: tuple[int, ...], low: int, high: int) -> None:
        super().__init__(protos, low, high)


class Proto(_Node):
    __slots__ = ("proto",)
    proto: int

    def __init__(self, proto: int) -> None:
        super().__init__(proto)


class And(_Node):
    __slots__ = ("left", "right")
    left: Plan
    right: Plan

    def __init__(self, left: Plan, right: Plan) -> None:
        super().__init__(left, right)


class Or(_Node):
    __slots__ = ("left", "right")
    left: Plan
    right: Plan

    def __init__(self, left: Plan, right: Plan) -> None:
        super().__init__(left, right)


Plan = Any | Addr | Net | Port | Proto | And | Or

_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9_.:/-]+)")
_ENCAP = {"mpls", "pppoes", "geneve", "vxlan"}
_L4 = {"tcp": 6, "udp": 17, "sctp": 132}
_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmp6": 58, "igmp": 2}
_DIRS = {"src", "dst", "srcordst", "srcanddst"}
_NET_PROTOS = {"ip", "ip6", "arp", "rarp"}


def _tokens(expr: str) -> list[str] | None:
    out: list[str] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if not m:
            return None  # operators, brackets: byte-offset expressions
        out.append(m.group(1).lower())
        pos = m.end()
    # "src or dst host X" is one qualifier, not an `or`.
    joined: list[str] = []
    i = 0
    while i < len(out):
        if out[i] == "src" and i + 2 < len(out) and out[i + 1] in ("or", "||", "and", "&&") and out[i + 2] == "dst":
            joined.append("srcordst" if out[i + 1] in ("or", "||") else "srcanddst")
            i += 3
        else:
            joined.append(out[i])
            i += 1
    return joined


def _primitive(words: list[str], previous: list[str] | None) -> tuple[Plan, list[str] | None]:
    """A plan for one primitive and the qualifiers a following bare id inherits."""
    if len(words) == 1 and words[0] in _PROTOS:
        return Proto(_PROTOS[words[0]]), None
    if len(words) == 1 and previous is not None:
        words = previous + words
    quals, ident = words[:-1], words[-1]
    kinds = [q for q in quals if q in ("host", "net", "port", "portrange")]
    protos = [q for q in quals if q in _L4 or q in _NET_PROTOS]
    unknown = [q for q in quals if q not in _DIRS and q not in kinds and q not in protos]
    if unknown or len(kinds) > 1:
        return Any(), None
    kind = kinds[0] if kinds else "host"
    try:
        if kind == "host":
            return Addr(ipaddress.ip_address(ident)), quals
        if kind == "net":
            return (Net(ipaddress.ip_network(ident, strict=False)) if "/" in ident else Any()), quals
        l4 = tuple(_L4[p] for p in protos if p in _L4) or (6, 17, 132)
        if kind == "port":
            port = int(ident)
            return (Port(l4, port, port) if 0 <= port <= 65535 else Any()), quals
        low, _, high = ident.partition("-")
        lo, hi = int(low), int(high)
        return (Port(l4, min(lo, hi), max(lo, hi)) if 0 <= lo <= 65535 and 0 <= hi <= 65535 else Any()), quals
    except ValueError:
        return Any(), None  # a name to resolve, a service name: let libpcap decide


class _Parser:
    def __init__(self, toks: list[str]) -> None:
        self.toks = toks
        self.i = 0
        self.previous: list[str] | None = None

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    # tcpdump: and/or have equal precedence, left to right; `not` binds tightest.
    def expr(self) -> Plan:
        left = self.unary()
        while self.peek() in ("and", "&&", "or", "||"):
            op = self.take()
            right = self.unary()
            left = And(left, right) if op in ("and", "&&") else Or(left, right)
        return left

    def unary(self) -> Plan:
        tok = self.peek()
        if tok is None:
            raise ValueError("unexpected end")
        if tok in ("not", "!"):
            self.take()
            self.unary()
            return Any()
        if tok == "(":
            self.take()
            inner = self.expr()
            if self.peek() != ")":
                raise ValueError("unbalanced")
            self.take()
            return inner
        words: list[str] = []
        while self.peek() not in (None, "and", "&&", "or", "||", ")", "(", "not", "!"):
            words.append(self.take())
        if not words:
            raise ValueError("empty primitive")
        plan, self.previous = _primitive(words, self.previous)
        return plan


def plan(expr: str | None) -> Plan:
    """The index plan of a tcpdump filter expression (Any when nothing can be skipped)."""
    if not expr or not expr.strip():
        return Any()
    toks = _tokens(expr)
    if toks is None or _ENCAP & set(toks):
        return Any()
    try:
        parser = _Parser(toks)
        result = parser.expr()
        if parser.peek() is not None:
            return Any()
        return result
    except (ValueError, IndexError):
        return Any()


PortKey = tuple[int, int]  # (IP protocol, port)
PickKey = IpAddress | PortKey


def pick_keys(p: Plan) -> frozenset[PickKey] | None:
    """Addresses and (protocol, port) pairs of which every packet the filter matches holds one
    (None: no such short list), so only the records holding them need reading."""
    if isinstance(p, Addr):
        return frozenset({p.addr})
    if isinstance(p, Port) and p.low == p.high:
        return frozenset((proto, p.low) for proto in p.protos)
    if isinstance(p, And):
        left, right = pick_keys(p.left), pick_keys(p.right)
        if left is None or right is None:
            return left if right is None else right
        return left if len(left) <= len(right) else right
    if isinstance(p, Or):
        left, right = pick_keys(p.left), pick_keys(p.right)
        return None if left is None or right is None else left | right
    return None
