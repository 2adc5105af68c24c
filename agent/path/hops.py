"""Per-hop statistics and the judgements drawn from them, as pure functions.

Everything here works on what the rounds of a trace recorded (who answered at
which TTL, and how fast) and nothing else, so it is tested without a network.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from agent.stats import percentile, wilson_interval


class AnswerKind(StrEnum):
    """What kind of answer a probe drew."""

    TIME_EXCEEDED = "time_exceeded"  # a router on the way: the TTL ran out there
    DESTINATION = "destination"  # the target itself (echo reply, port unreachable, SYN-ACK/RST)
    UNREACHABLE = "unreachable"  # a router said the target cannot be reached: the path ends


class Verdict(StrEnum):
    """How to read one hop's loss."""

    OK = "ok"  # no loss that the data can tell from zero ... or not more than the path's
    PATH_LOSS = "path_loss"  # part of the loss that persists to the furthest hop
    RATE_LIMITED = "rate_limited"  # loses more replies than hops beyond it: its ICMP is limited
    SILENT = "silent"  # never answered, though hops beyond it did: it does not send ICMP
    UNKNOWN = "unknown"  # beyond the furthest hop that answered: nothing to compare with


RATE_LIMITED_NOTE = "rate-limited (ICMP replies), not path loss"


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer one probe drew."""

    address: str
    rtt_ns: int
    kind: AnswerKind


@dataclass(slots=True)
class RoundResult:
    """One pass over the TTLs: TTLs 1..probed were sent, answers by TTL."""

    index: int
    started_unix_ns: int
    probed: int
    answers: dict[int, Answer] = field(default_factory=dict)

    def end_ttl(self) -> int | None:
        """The lowest TTL at which the path ended (the target, or a router's unreachable)."""
        ends = [
            ttl for ttl, answer in self.answers.items() if answer.kind != AnswerKind.TIME_EXCEEDED
        ]
        return min(ends) if ends else None

    def reached(self) -> bool:
        end = self.end_ttl()
        return end is not None and self.answers[end].kind == AnswerKind.DESTINATION

    def hop_list(self) -> list[str | None]:
        """Addresses by TTL (index 0 is TTL 1) up to the end; None where nothing answered.

        Without an end, up to the furthest answer: the silent TTLs after it say
        nothing about the path.
        """
        last = self.end_ttl() or max(self.answers, default=0)
        return [a.address if (a := self.answers.get(ttl)) else None for ttl in range(1, last + 1)]


@dataclass(frozen=True, slots=True)
class HopStats:
    """What one TTL saw over all rounds."""

    ttl: int
    sent: int
    received: int
    addresses: tuple[tuple[str, int], ...]  # (address, answers), most frequent first
    rtts_ns: tuple[int, ...]  # sorted
    destination: bool  # the target answered at this TTL

    @property
    def address(self) -> str | None:
        return self.addresses[0][0] if self.addresses else None

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def loss_ratio(self) -> float | None:
        return self.lost / self.sent if self.sent else None

    @property
    def loss_interval(self) -> tuple[float, float]:
        return wilson_interval(self.lost, self.sent)

    def rtt_ms(self) -> dict[str, float] | None:
        """min/mean/p99/max in milliseconds, or None without answers."""
        if not self.rtts_ns:
            return None
        values = self.rtts_ns
        return {
            "min": round(values[0] / 1e6, 3),
            "mean": round(sum(values) / len(values) / 1e6, 3),
            "p99": round(percentile(values, 99) / 1e6, 3),
            "max": round(values[-1] / 1e6, 3),
        }


def final_ttl(rounds: Sequence[RoundResult]) -> int:
    """How many hops the report shows: the path's length in the latest round that
    ended (the path may have changed), else the furthest TTL that answered at all."""
    for result in reversed(rounds):
        end = result.end_ttl()
        if end is not None:
            return end
    return max((ttl for result in rounds for ttl in result.answers), default=0)


def aggregate_hops(rounds: Sequence[RoundResult], last_ttl: int) -> list[HopStats]:
    """Per-TTL counts for TTLs 1..last_ttl.

    A round counts as sent at a TTL only when that TTL was probed and was not
    beyond where the round's path ended: the first round probes every TTL up
    to the maximum, and the target's answers past its own TTL are not hops.
    """
    hops = []
    for ttl in range(1, last_ttl + 1):
        sent = 0
        addresses: Counter[str] = Counter()
        rtts: list[int] = []
        destination = False
        for result in rounds:
            end = result.end_ttl()
            if ttl > result.probed or (end is not None and ttl > end):
                continue
            sent += 1
            answer = result.answers.get(ttl)
            if answer is None:
                continue
            addresses[answer.address] += 1
            rtts.append(answer.rtt_ns)
            destination = destination or answer.kind == AnswerKind.DESTINATION
        ranked = tuple(sorted(addresses.items(), key=lambda item: (-item[1], item[0])))
        hops.append(HopStats(ttl, sent, len(rtts), ranked, tuple(sorted(rtts)), destination))
    return hops


@dataclass(frozen=True, slots=True)
class LossJudgement:
    """Each hop's verdict (in TTL order) and where path loss starts, if anywhere."""

    verdicts: tuple[Verdict, ...]
    path_loss_start_ttl: int | None
    furthest_ttl: int | None  # the furthest hop that answered: the reference


def judge_loss(counts: Sequence[tuple[int, int]]) -> LossJudgement:
    """Tell path loss from ICMP rate limiting, from (sent, received) per TTL (TTL 1 first).

    A router forwards probes in its data plane but answers them from its
    control plane, which may limit how many ICMP errors it sends. So loss at a
    hop is only path loss if it persists to the furthest hop that answers:
    * a hop whose loss interval lies wholly above the furthest hop's (lower
      bound above its upper bound) loses replies, not packets: rate limited;
    * when the furthest hop's loss is above zero (lower bound > 0), the loss
      starts right after the last hop that lost significantly less (upper
      bound below the furthest hop's lower bound), and every hop from there on
      is part of it.
    """
    answering = [i for i, (_sent, received) in enumerate(counts) if received > 0]
    if not answering:
        return LossJudgement(tuple(Verdict.UNKNOWN for _ in counts), None, None)
    end = answering[-1]
    end_low, end_high = wilson_interval(counts[end][0] - counts[end][1], counts[end][0])
    verdicts = [_hop_verdict(sent, received, end_high) for sent, received in counts[:end]]
    start = None
    if end_low > 0:
        below = [
            i
            for i, (sent, received) in enumerate(counts[:end])
            if sent and wilson_interval(sent - received, sent)[1] < end_low
        ]
        start = below[-1] + 1 if below else 0
        for i in range(start, end):
            if verdicts[i] == Verdict.OK:
                verdicts[i] = Verdict.PATH_LOSS
    verdicts.append(Verdict.PATH_LOSS if start is not None else Verdict.OK)
    verdicts.extend(Verdict.UNKNOWN for _ in counts[end + 1 :])
    return LossJudgement(tuple(verdicts), None if start is None else start + 1, end + 1)


def _hop_verdict(sent: int, received: int, end_high: float) -> Verdict:
    """A hop before the furthest answering one, judged against that hop's loss."""
    if sent == 0:
        return Verdict.UNKNOWN
    if received == 0:
        return Verdict.SILENT
    if wilson_interval(sent - received, sent)[0] > end_high:
        return Verdict.RATE_LIMITED
    return Verdict.OK


@dataclass(frozen=True, slots=True)
class BorderEgress:
    border_ttl: int | None
    egress_ttl: int | None
    basis: str  # how the border was found: "border address", "provider prefix" or "none"


def find_border_egress(
    hops: Sequence[HopStats],
    border_addresses: Iterable[str] = (),
    provider_prefixes: Iterable[ipaddress.IPv4Network] = (),
) -> BorderEgress:
    """The border router's hop and the egress hop (the first hop after it).

    Given the border's addresses, the border is the hop where one of them
    answered (any answer counts: a router may answer from several interfaces).
    Else, given the provider's prefixes, it is the last hop whose address lies
    inside them: everything after it is someone else's network.
    """
    borders = set(border_addresses)
    prefixes = list(provider_prefixes)
    border_ttl: int | None = None
    basis = "none"
    if borders:
        basis = "border address"
        matches = [hop.ttl for hop in hops if any(a in borders for a, _n in hop.addresses)]
        border_ttl = matches[0] if matches else None
    elif prefixes:
        basis = "provider prefix"
        inside = [hop.ttl for hop in hops if hop.address and _inside(hop.address, prefixes)]
        border_ttl = inside[-1] if inside else None
    egress_ttl = border_ttl + 1 if border_ttl is not None and border_ttl < len(hops) else None
    return BorderEgress(border_ttl, egress_ttl, basis)


def _inside(address: str, prefixes: Sequence[ipaddress.IPv4Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in prefix for prefix in prefixes)


@dataclass(frozen=True, slots=True)
class PathChange:
    """The path of round ``round_index`` differs from the one known before it."""

    round_index: int
    at_unix_ns: int
    old: tuple[str | None, ...]
    new: tuple[str | None, ...]


def paths_differ(
    old: Sequence[str | None], old_reached: bool, new: Sequence[str | None], new_reached: bool
) -> bool:
    """Whether two hop lists name different paths.

    A TTL where either side got no answer (``*``) is no evidence of a change:
    a lost probe or a rate-limited router is not a new path. A different
    length counts only when both reached the target.
    """
    if any(a is not None and b is not None and a != b for a, b in zip(old, new, strict=False)):
        return True
    return old_reached and new_reached and len(old) != len(new)


def merge_path(old: Sequence[str | None], new: Sequence[str | None]) -> list[str | None]:
    """The known path filled in with what a consistent round adds."""

    def at(path: Sequence[str | None], i: int) -> str | None:
        return path[i] if i < len(path) else None

    return [at(new, i) or at(old, i) for i in range(max(len(old), len(new)))]


class PathTracker:
    """Follows the path round by round and says when it changes."""

    def __init__(self) -> None:
        self.known: list[str | None] = []
        self.reached = False
        self._started = False

    def update(self, result: RoundResult) -> PathChange | None:
        new, reached = result.hop_list(), result.reached()
        if not any(new):
            return None  # a round where nothing answered says nothing about the path
        change = None
        if self._started and paths_differ(self.known, self.reached, new, reached):
            change = PathChange(result.index, result.started_unix_ns, tuple(self.known), tuple(new))
            self.known, self.reached = list(new), reached
        else:
            merged = merge_path(self.known, new)
            # A round that fell short of a known end adds stars filled in, never length.
            self.known = merged[: len(self.known)] if self.reached and not reached else merged
            self.reached = self.reached or reached
        self._started = True
        return change
