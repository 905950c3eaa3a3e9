"""RAID watchdog: every md array from /proc/mdstat, completed by /sys/block/md*/md.

parse_mdstat() understands the kernel's text (healthy `[UU]`, degraded `[U_U]`, failed `(F)` and
spare `(S)` members, resync/recovery/check progress, inactive arrays, and external-metadata
(IMSM/DDF) containers, always listed inactive but never degraded); read_sysfs() adds what
sysfs says (array_state, degraded count, sync_action, sync_completed). The two are merged by
read_arrays(); when sysfs is absent, mdstat alone decides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.config import Config
from appliance.watchdogs import Context, Family, Sample, Watchdog, register

_ARRAY_RE = re.compile(r"^(md\w+)\s*:\s*(\S+)\s*(.*)$")
_MEMBER_RE = re.compile(r"^([\w.-]+)\[(\d+)\]((?:\([A-Za-z]\))*)$")
_COUNT_RE = re.compile(r"\[(\d+)/(\d+)\]\s+\[([U_]+)\]")
_PROGRESS_RE = re.compile(r"\b(resync|recovery|check|repair|reshape)\s*=\s*([\d.]+)%")
_DELAYED_RE = re.compile(r"\b(resync|recovery|check|repair|reshape)\s*=\s*(DELAYED|PENDING)")
# "super external:imsm" (a container); its member arrays say "super external:/md0/0".
_CONTAINER_RE = re.compile(r"\bsuper external:(?!/)")


@dataclass
class Member:
    device: str
    slot: int
    flags: str = ""  # e.g. "F" (faulty), "S" (spare), "W" (write-mostly), "R" (replacement)

    @property
    def failed(self) -> bool:
        return "F" in self.flags

    @property
    def spare(self) -> bool:
        return "S" in self.flags


@dataclass
class MdArray:
    name: str
    state: str  # "active", "inactive", plus "(auto-read-only)"/"(read-only)" when present
    level: str | None = None
    members: list[Member] = field(default_factory=list)
    raid_disks: int | None = None
    in_sync: int | None = None
    status: str | None = None  # the [UU_] map
    sync_action: str = "idle"  # idle, resync, recovery, check, repair, reshape
    sync_progress: float = 1.0  # 0..1 while a sync runs, 1 when idle
    sysfs_degraded: int | None = None
    array_state: str | None = None
    container: bool = False  # external-metadata container: always "inactive", holds no data itself

    @property
    def failed_members(self) -> int:
        return sum(1 for m in self.members if m.failed)

    @property
    def spare_members(self) -> int:
        return sum(1 for m in self.members if m.spare and not m.failed)

    @property
    def active_members(self) -> int:
        if self.in_sync is not None:
            return self.in_sync
        return sum(1 for m in self.members if not m.failed and not m.spare)

    @property
    def degraded(self) -> bool:
        if self.container:
            return False
        if self.sysfs_degraded is not None and self.sysfs_degraded > 0:
            return True
        if self.state.startswith("inactive"):
            return True
        if self.raid_disks is not None and self.in_sync is not None:
            return self.in_sync < self.raid_disks
        return self.failed_members > 0


def parse_mdstat(text: str) -> list[MdArray]:
    arrays: list[MdArray] = []
    current: MdArray | None = None
    for line in text.splitlines():
        m = _ARRAY_RE.match(line)
        if m:
            current = _parse_array_line(m.group(1), m.group(2), m.group(3))
            arrays.append(current)
            continue
        if current is None or not line.startswith((" ", "\t")):
            if not line.strip():
                current = None
            continue
        _parse_detail_line(current, line)
    return arrays


def _parse_array_line(name: str, state: str, rest: str) -> MdArray:
    words = rest.split()
    while words and words[0].startswith("("):  # "(auto-read-only)", "(read-only)"
        state += " " + words.pop(0)
    array = MdArray(name=name, state=state)
    if words and not _MEMBER_RE.match(words[0]):
        array.level = words.pop(0)
    for word in words:
        mm = _MEMBER_RE.match(word)
        if mm:
            array.members.append(Member(mm.group(1), int(mm.group(2)), mm.group(3).replace("(", "")
                                        .replace(")", "")))
    return array


def _parse_detail_line(array: MdArray, line: str) -> None:
    if _CONTAINER_RE.search(line):
        array.container = True
    m = _COUNT_RE.search(line)
    if m:
        array.raid_disks, array.in_sync, array.status = int(m.group(1)), int(m.group(2)), m.group(3)
        return
    m = _PROGRESS_RE.search(line)
    if m:
        array.sync_action = m.group(1)
        array.sync_progress = float(m.group(2)) / 100.0
        return
    m = _DELAYED_RE.search(line)
    if m:
        array.sync_action = m.group(1)
        array.sync_progress = 0.0


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def apply_sysfs(array: MdArray, sys_block: str | os.PathLike[str]) -> None:
    """Complete an array from /sys/block/<name>/md (missing files leave mdstat's view)."""
    md = Path(sys_block) / array.name / "md"
    if not md.is_dir():
        return
    array.array_state = _read(md / "array_state")
    degraded = _read(md / "degraded")
    if degraded is not None and degraded.isdigit():
        array.sysfs_degraded = int(degraded)
    raid_disks = _read(md / "raid_disks")
    if raid_disks is not None and raid_disks.isdigit() and array.raid_disks is None:
        array.raid_disks = int(raid_disks)
    action = _read(md / "sync_action")
    completed = _read(md / "sync_completed")
    if action and action not in ("idle", "frozen"):
        array.sync_action = "recovery" if action == "recover" else action
        if completed and "/" in completed:
            done, total = (int(x) for x in completed.split("/"))
            array.sync_progress = done / total if total else 0.0
    if array.in_sync is None:
        members = [d for d in md.glob("dev-*") if (d / "state").exists()]
        if members:
            array.members = []
            for i, d in enumerate(sorted(members)):
                state = _read(d / "state") or ""
                flags = "F" if "faulty" in state else "S" if "spare" in state else ""
                array.members.append(Member(d.name[4:], i, flags))


def read_arrays(mdstat: str | os.PathLike[str] = "/proc/mdstat",
                sys_block: str | os.PathLike[str] = "/sys/block") -> list[MdArray]:
    """Every md array on this machine; [] when the kernel has no md driver."""
    try:
        text = Path(mdstat).read_text()
    except OSError:
        return []
    arrays = parse_mdstat(text)
    for array in arrays:
        apply_sysfs(array, sys_block)
    return arrays


@dataclass
class ArrayStatus:
    """What is reported of one md array."""

    array: str
    state: str
    level: str | None
    degraded: bool
    failed_members: int
    spare_members: int
    active_members: int
    raid_disks: int | None
    sync_action: str
    sync_progress: float


@dataclass
class RaidReading:
    arrays: list[ArrayStatus]


def status_of(a: MdArray) -> ArrayStatus:
    return ArrayStatus(a.name, a.state, a.level, a.degraded, a.failed_members, a.spare_members,
                       a.active_members, a.raid_disks, a.sync_action, a.sync_progress)


@register
class RaidWatchdog(Watchdog[RaidReading]):
    """md arrays: degraded, failed and spare members, resync progress."""

    name = "raid"
    reading_type = RaidReading
    families = (
        Family("sluice_raid_degraded", "gauge", "1 when the array runs with fewer members than it needs", ("array",)),
        Family("sluice_raid_failed_members", "gauge", "members marked (F)", ("array",)),
        Family("sluice_raid_spare_members", "gauge", "spare members", ("array",)),
        Family("sluice_raid_active_members", "gauge", "members in sync", ("array",)),
        Family("sluice_raid_sync_progress_ratio", "gauge", "resync/recovery progress 0..1 (1 when idle)", ("array",)),
    )

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.interval) if cfg.watchdogs.raid else None

    def check(self, ctx: Context) -> RaidReading:
        wd = ctx.cfg.watchdogs
        return RaidReading([status_of(a) for a in read_arrays(wd.mdstat, wd.sys_block)])

    @classmethod
    def samples(cls, reading: RaidReading) -> Iterable[Sample]:
        for a in reading.arrays:
            yield Sample("sluice_raid_degraded", (a.array,), float(a.degraded))
            yield Sample("sluice_raid_failed_members", (a.array,), float(a.failed_members))
            yield Sample("sluice_raid_spare_members", (a.array,), float(a.spare_members))
            yield Sample("sluice_raid_active_members", (a.array,), float(a.active_members))
            yield Sample("sluice_raid_sync_progress_ratio", (a.array,), float(a.sync_progress))

    @classmethod
    def describe(cls, reading: RaidReading) -> list[str]:
        if not reading.arrays:
            return ["raid: no md arrays"]
        lines = []
        for a in reading.arrays:
            sync = "" if a.sync_action == "idle" else f", {a.sync_action} {a.sync_progress:.1%}"
            lines.append(f"raid: {a.array} {a.level or ''} {'DEGRADED' if a.degraded else 'ok'} "
                         f"({a.active_members}/{a.raid_disks or '?'} active, {a.failed_members} failed, "
                         f"{a.spare_members} spare{sync})")
        return lines
