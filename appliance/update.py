"""Firmware updates: a signed RAUC bundle goes into the root slot that is not running, the next
boot tries it once, and it is marked good only after the box proves it can capture.

- `install`: checks the bundle (signature against the box's keyring, compatible string) with
  `rauc info` first, so a refused bundle is one line and nothing is written; then `rauc install`
  writes the other slot and makes it GRUB's first choice for one try. The capture journal is told.
- `mark_good` (sluice-mark-good.service, at every boot through GRUB): waits until the box
  captures (`check_health`) and runs `rauc status mark-good booted`. A slot on trial that does not
  get healthy is marked bad and the box reboots into the previous slot; that slot then reports the
  failed update (also one that never booted far enough to say so itself).
- `update_status`: what `/metrics` exports as sluice_update_* (monitoring/METRICS.md).

State that must outlive a slot (pending update, counters, last result) is kept in STATE_PATH on
the data partition (docs/image.md), the release of the running slot in RELEASE_PATH.
"""

from __future__ import annotations

import argparse
import configparser
import json
import logging
import os
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance import config as config_mod
from appliance.errors import SluiceError
from appliance.journal import Journal

log = logging.getLogger("sluice.update")

RAUC_CONF = "/etc/rauc/system.conf"
RELEASE_PATH = "/usr/lib/sluice/release"
STATE_PATH = "/var/lib/sluice/update.json"
CMDLINE_PATH = "/proc/cmdline"
SUPERVISOR_UNIT = "sluice.service"
HEALTH_TIMEOUT = 300.0
# Healthy in this many consecutive rounds, this far apart: a writer in a restart loop is "up"
# for a moment at a time, a box that captures stays up.
HEALTH_ROUNDS = 3
HEALTH_INTERVAL = 3.0


# -- the bundle ------------------------------------------------------------------------------------

@dataclass
class BundleInfo:
    path: str
    compatible: str
    version: str
    commit: str


def _system_conf(rauc_conf: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(rauc_conf, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise SluiceError(f"cannot read RAUC's system config {rauc_conf}: {exc}") from None
    return parser


def system_compatible(rauc_conf: str) -> tuple[str, str]:
    """The box's compatible string and keyring path from RAUC's system.conf."""
    parser = _system_conf(rauc_conf)
    try:
        return parser.get("system", "compatible"), parser.get("keyring", "path", fallback="")
    except configparser.Error as exc:
        raise SluiceError(f"RAUC's system config {rauc_conf}: {exc}") from None


def grub_env(rauc_conf: str) -> dict[str, str]:
    """GRUB's A/B variables (ORDER, A_OK, A_TRY, ...) from the grubenv that system.conf names."""
    path = _system_conf(rauc_conf).get("system", "grubenv", fallback="")
    env: dict[str, str] = {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return env
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            env[key] = value
    return env


def _rauc_error(stderr: str) -> str:
    """rauc's own reason: its last line that is not a progress message."""
    lines = [ln.strip() for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith("rauc-Message") and not ln.startswith("(rauc:")]
    return lines[-1] if lines else "rauc failed without a message"


def _refusal(bundle: str, reason: str, keyring: str) -> str:
    if "Signature size is 0" in reason:
        why = "it is not signed"
    elif "exceeds bundle size" in reason or "too small" in reason.lower() or "Invalid bundle" in reason:
        why = "it is truncated or not a RAUC bundle"
    elif "signature verification failed" in reason or "Verify error" in reason:
        why = f"its signature is not trusted by the keyring {keyring or '(none)'} (signed by another key?)"
    else:
        why = "rauc cannot read it"
    return f"refusing bundle {bundle}: {why} ({reason})"


def inspect_bundle(bundle: str, rauc_conf: str = RAUC_CONF) -> BundleInfo:
    """Verify a bundle as `rauc install` would before writing anything: signature against the
    box's keyring and the compatible string. SluiceError (exit 2) naming the cause otherwise."""
    if not os.path.isfile(bundle):
        raise SluiceError(f"refusing bundle {bundle}: no such file")
    compatible, keyring = system_compatible(rauc_conf)
    proc = subprocess.run(["rauc", f"--conf={rauc_conf}", "info", "--output-format=json", bundle],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SluiceError(_refusal(bundle, _rauc_error(proc.stderr), keyring))
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SluiceError(f"refusing bundle {bundle}: rauc info printed no JSON") from None
    if info.get("compatible") != compatible:
        raise SluiceError(f"refusing bundle {bundle}: it is for '{info.get('compatible')}', "
                          f"this box is '{compatible}'")
    return BundleInfo(bundle, compatible, str(info.get("version") or "unknown"), str(info.get("build") or "unknown"))


# -- persistent state, release, booted slot --------------------------------------------------------

@dataclass
class UpdateState:
    pending: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    installs_total: int = 0
    succeeded_total: int = 0
    rollbacks_total: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> UpdateState:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("update state %s unreadable (%s): starting afresh", path, exc)
            return cls()
        known = {k: data.pop(k) for k in ("pending", "last", "installs_total", "succeeded_total",
                                           "rollbacks_total") if k in data}
        return cls(**known, extra=data)

    def save(self, path: str) -> None:
        doc = {**self.extra, "pending": self.pending, "last": self.last, "installs_total": self.installs_total,
               "succeeded_total": self.succeeded_total, "rollbacks_total": self.rollbacks_total}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)


def read_release(path: str = RELEASE_PATH) -> dict[str, str]:
    """The running slot's release (KEY=value lines written by image/build)."""
    release: dict[str, str] = {}
    try:
        for line in Path(path).read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                release[key.strip()] = value.strip().strip('"')
    except OSError:
        pass
    return release


def booted_slot(cmdline_path: str = CMDLINE_PATH) -> str | None:
    """The slot GRUB booted (rauc.slot=A|B on the kernel command line); None without GRUB."""
    try:
        words = Path(cmdline_path).read_text().split()
    except OSError:
        return None
    for word in words:
        if word.startswith("rauc.slot="):
            return word.split("=", 1)[1]
    return None


def _journal_path(config_path: str) -> Path | None:
    """The capture journal of this config; from the raw TOML when the config itself is refused."""
    try:
        return config_mod.load(config_path).journal_path
    except SluiceError:
        pass
    try:
        with open(config_path, "rb") as f:
            spool = tomllib.load(f).get("capture", {}).get("spool")
        return Path(spool) / "journal.jsonl" if isinstance(spool, str) else None
    except (OSError, tomllib.TOMLDecodeError):
        return None


def tell_journal(config_path: str, event: str, **fields: Any) -> None:
    """One event in the capture journal (written next to the supervisor's own, O_APPEND)."""
    path = _journal_path(config_path)
    if path is None or not path.parent.is_dir():
        log.warning("journal of %s not reachable: %s not recorded there", config_path, event)
        return
    with Journal(path) as journal:
        journal.append(event, **fields)


def _rauc_argv(rauc_conf: str, *args: str) -> list[str]:
    """rauc with the box's config; --conf only when it is not the default (install and status
    talk to rauc.service over D-Bus, which has its own)."""
    return ["rauc", *([] if rauc_conf == RAUC_CONF else [f"--conf={rauc_conf}"]), *args]


# rauc status talks to rauc.service over D-Bus; at boot on a slow box the service may still be
# starting and the call times out ("Timeout was reached", seen under qemu TCG at first boot).
# Marking a slot is idempotent, so a status call is tried again; an install is not.
STATUS_ATTEMPTS = 6
STATUS_RETRY_SECONDS = 10.0


def run_rauc(rauc_conf: str, *args: str, retry_seconds: float = STATUS_RETRY_SECONDS) -> None:
    attempts = STATUS_ATTEMPTS if args[:1] == ("status",) else 1
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(_rauc_argv(rauc_conf, *args), capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return
        reason = _rauc_error(proc.stderr)
        if attempt == attempts or "Timeout was reached" not in proc.stderr:
            raise SluiceError(f"rauc {' '.join(args)} failed: {reason}", exit_code=1)
        log.warning("rauc %s: %s (rauc.service still starting?): trying again in %gs (%d/%d)",
                    " ".join(args), reason, retry_seconds, attempt, attempts)
        time.sleep(retry_seconds)


# -- install ---------------------------------------------------------------------------------------

@dataclass
class Paths:
    """Where one box keeps things (the defaults are the appliance's; tests point elsewhere)."""

    config: str = config_mod.DEFAULT_CONFIG_PATH
    rauc_conf: str = RAUC_CONF
    state: str = STATE_PATH
    release: str = RELEASE_PATH
    cmdline: str = CMDLINE_PATH


def install(bundle: str, paths: Paths) -> BundleInfo:
    """Check the bundle, then `rauc install` it into the other slot; the journal is told."""
    release = read_release(paths.release)
    running = {"from_slot": booted_slot(paths.cmdline), "from_version": release.get("SLUICE_VERSION", __version__)}
    try:
        info = inspect_bundle(bundle, paths.rauc_conf)
    except SluiceError as exc:
        tell_journal(paths.config, "update_refused", bundle=bundle, reason=str(exc), **running)
        raise
    fields = {"bundle": bundle, "version": info.version, "commit": info.commit, **running}
    tell_journal(paths.config, "update_install_started", **fields)
    # rauc's progress lines go through to the operator; its stderr gives the reason on failure.
    proc = subprocess.run(_rauc_argv(paths.rauc_conf, "install", bundle), stderr=subprocess.PIPE, text=True,
                          check=False)
    if proc.returncode != 0:
        reason = _rauc_error(proc.stderr)
        tell_journal(paths.config, "update_install_failed", reason=reason, **fields)
        raise SluiceError(f"installing {bundle} failed: {reason}", exit_code=1)
    state = UpdateState.load(paths.state)
    target = {"A": "B", "B": "A"}.get(running["from_slot"] or "", "other")
    state.pending = {"slot": target, "version": info.version, "commit": info.commit,
                     "installed_at": time.time(), **running}
    state.installs_total += 1
    state.save(paths.state)
    tell_journal(paths.config, "update_installed", slot=target, **fields)
    return info


# -- health: the box proves it can capture ---------------------------------------------------------

@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Health:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def _metrics_url(cfg: config_mod.Config, state: dict[str, Any]) -> str:
    host, port = cfg.get("metrics", "listen")
    port = port or int(state.get("metrics_port") or 0)
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


def _writers_up(text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    up: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "sluice_writer_up":
            for sample in family.samples:
                up[sample.labels.get("interface", "")] = sample.value
    return up


def check_health(config_path: str, unit: str | None = SUPERVISOR_UNIT) -> Health:
    """One look at the box: config accepted, supervisor active (its unit, and a fresh
    status.json from a live pid), spool on a mounted filesystem, /metrics served, every
    configured interface's writer up (running and sending stats)."""
    try:
        cfg = config_mod.load(config_path)
    except SluiceError as exc:
        return Health([Check("config", False, f"refused by this version: {exc}")])
    checks = [Check("config", True)]
    if unit:
        active = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, check=False)
        state_word = active.stdout.strip() or "unknown"
        checks.append(Check("supervisor-unit", state_word == "active", f"{unit} is {state_word}"))
    state: dict[str, Any] = {}
    try:
        state = json.loads(cfg.state_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        checks.append(Check("supervisor", False, f"no status from the supervisor ({cfg.state_path}: {exc})"))
    if state:
        age = time.time() - float(state.get("ts", 0))
        pid = int(state.get("pid") or 0)
        alive = pid > 0 and os.path.exists(f"/proc/{pid}")
        fresh = age < max(10.0, 5 * cfg.get("supervisor", "state_interval"))
        checks.append(Check("supervisor", alive and fresh,
                            f"status.json is {age:.0f} s old, pid {pid} {'alive' if alive else 'gone'}"))
    mount = _mount_point(cfg.spool) if cfg.spool.exists() else None
    where = "missing" if mount is None else "on the root filesystem, not a mounted spool"
    checks.append(Check("spool-mounted", mount is not None and mount != Path("/"), f"{cfg.spool} is {where}"))
    url = _metrics_url(cfg, state)
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        checks.append(Check("metrics", True))
    except (OSError, urllib.error.URLError, ValueError) as exc:
        checks.append(Check("metrics", False, f"{url}: {exc}"))
        text = None
    if text is not None:
        up = _writers_up(text)
        down = [i for i in cfg.interfaces if up.get(i) != 1.0]
        checks.append(Check("writers", not down, f"no stats from the writer of {', '.join(down)}"))
    return Health(checks)


def wait_healthy(config_path: str, unit: str | None = SUPERVISOR_UNIT, timeout: float = HEALTH_TIMEOUT,
                 rounds: int = HEALTH_ROUNDS, interval: float = HEALTH_INTERVAL) -> Health:
    """Healthy `rounds` times in a row, or the last look once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    streak = 0
    while True:
        health = check_health(config_path, unit)
        streak = streak + 1 if health.ok else 0
        # A config this version refuses does not fix itself: no point waiting for it.
        refused = not health.checks[0].ok and health.checks[0].name == "config"
        if streak >= rounds or refused or time.monotonic() + interval > deadline:
            return health
        time.sleep(interval)


# -- mark good, or fall back -----------------------------------------------------------------------

def _finish(state: UpdateState, pending: dict[str, Any], result: str, reason: str = "") -> dict[str, Any]:
    state.last = {"version": pending.get("version"), "commit": pending.get("commit"), "slot": pending.get("slot"),
                  "from_version": pending.get("from_version"), "result": result, "reason": reason, "at": time.time()}
    if result == "succeeded":
        state.succeeded_total += 1
    else:
        state.rollbacks_total += 1
    state.pending = None
    return state.last


def mark_good(paths: Paths, unit: str | None = SUPERVISOR_UNIT, timeout: float = HEALTH_TIMEOUT,
              reboot: bool = True) -> int:
    """At boot through GRUB: settle a failed update, check the box, mark the booted slot good.
    Returns 0 when marked good, 1 when the box is not healthy."""
    booted = booted_slot(paths.cmdline)
    if booted is None:
        raise SluiceError("not booted through GRUB's A/B selection (no rauc.slot= on the kernel command line)")
    state = UpdateState.load(paths.state)
    pending = state.pending
    env = grub_env(paths.rauc_conf)
    if pending and pending.get("slot") != booted and (
            pending.get("tried") or env.get(f"{pending.get('slot')}_TRY") == "1"
            or env.get(f"{pending.get('slot')}_OK") == "0"):
        # GRUB booted the new slot (its try flag is set, or it marked itself bad) and the box is
        # back here: it failed its health check, or never got as far as saying so.
        reason = pending.get("failure") or f"slot {pending.get('slot')} did not come up healthy (no report from it)"
        _finish(state, pending, "failed", reason)
        state.save(paths.state)
        tell_journal(paths.config, "update_rolled_back", slot=pending.get("slot"), version=pending.get("version"),
                     commit=pending.get("commit"), running_slot=booted, reason=reason)
        log.error("update to %s in slot %s failed, back on slot %s: %s",
                  pending.get("version"), pending.get("slot"), booted, reason)
        try:
            run_rauc(paths.rauc_conf, "status", "mark-bad", "other")
        except SluiceError as exc:
            log.warning("%s", exc)
    on_trial = bool(state.pending and state.pending.get("slot") == booted)
    if on_trial and state.pending is not None:
        state.pending["tried"] = True
        state.save(paths.state)
    health = wait_healthy(paths.config, unit, timeout)
    release = read_release(paths.release)
    here = {"slot": booted, "version": release.get("SLUICE_VERSION", __version__),
            "commit": release.get("SLUICE_GIT_COMMIT", "unknown")}
    if health.ok:
        run_rauc(paths.rauc_conf, "status", "mark-good", "booted")
        if on_trial and state.pending is not None:
            _finish(state, state.pending, "succeeded")
            state.save(paths.state)
            tell_journal(paths.config, "update_succeeded", **here)
        log.info("slot %s (%s) captures: marked good", booted, here["version"])
        return 0
    reason = health.failures()
    tell_journal(paths.config, "slot_health_failed", on_trial=on_trial, reason=reason, **here)
    log.error("slot %s (%s) is not healthy: %s", booted, here["version"], reason)
    if on_trial and state.pending is not None:
        # Recorded here, settled (and counted) by the slot the box falls back to.
        state.pending["failure"] = f"slot {booted} ({here['version']}) failed its health check: {reason}"
        state.save(paths.state)
        run_rauc(paths.rauc_conf, "status", "mark-bad", "booted")
        if reboot:
            log.error("rebooting into the previous slot")
            subprocess.run(["systemctl", "reboot"], check=False)
    return 1


# -- what /metrics exports -------------------------------------------------------------------------

def update_status(paths: Paths | None = None) -> dict[str, Any]:
    """The sluice_update_* readings: running release and slot, pending update, counters, last result."""
    paths = paths or Paths()
    release = read_release(paths.release)
    state = UpdateState.load(paths.state)
    return {"version": release.get("SLUICE_VERSION", __version__),
            "commit": release.get("SLUICE_GIT_COMMIT", "unknown"),
            "slot": booted_slot(paths.cmdline) or "none",
            "pending": state.pending is not None,
            "installs_total": state.installs_total,
            "succeeded_total": state.succeeded_total,
            "rollbacks_total": state.rollbacks_total,
            "last": state.last}


# -- the command -----------------------------------------------------------------------------------

def _paths(args: argparse.Namespace) -> Paths:
    return Paths(config=args.config, rauc_conf=args.rauc_conf, state=args.state)


def _install_cmd(args: argparse.Namespace) -> int:
    info = install(args.bundle, _paths(args))
    print(f"installed {info.version} ({info.commit}) into the other slot: it boots once at the next reboot "
          "and is kept only if it captures")
    return 0


def _mark_good_cmd(args: argparse.Namespace) -> int:
    return mark_good(_paths(args), unit=args.unit or None, timeout=args.timeout, reboot=not args.no_reboot)


def _health_cmd(args: argparse.Namespace) -> int:
    health = wait_healthy(args.config, args.unit or None, args.timeout) if args.timeout else \
        check_health(args.config, args.unit or None)
    for c in health.checks:
        print(f"{c.name}: {'ok' if c.ok else 'FAIL ' + c.detail}")
    return 0 if health.ok else 1


def _status_cmd(args: argparse.Namespace) -> int:
    print(json.dumps(update_status(_paths(args)), indent=1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("update", help="firmware updates: install a signed bundle, prove and mark the booted slot")
    usub = p.add_subparsers(dest="update_command", metavar="ACTION")
    usub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
        q.add_argument("--rauc-conf", default=RAUC_CONF, help="RAUC's system config (keyring, compatible)")
        q.add_argument("--state", default=STATE_PATH, help="the update state kept across slots")

    i = usub.add_parser("install", help="verify BUNDLE and write it into the other root slot (rauc install)")
    i.add_argument("bundle")
    common(i)
    i.set_defaults(func=_install_cmd)
    m = usub.add_parser("mark-good", help="at boot: mark the booted slot good once the box captures, "
                        "else fall back")
    common(m)
    m.add_argument("--unit", default=SUPERVISOR_UNIT, help="the supervisor's systemd unit ('' = none)")
    m.add_argument("--timeout", type=float, default=HEALTH_TIMEOUT, help="seconds to wait for health")
    m.add_argument("--no-reboot", action="store_true", help="do not reboot after marking a trial slot bad")
    m.set_defaults(func=_mark_good_cmd)
    h = usub.add_parser("health", help="the mark-good checks, one line each; exit 1 when one fails")
    h.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    h.add_argument("--unit", default=SUPERVISOR_UNIT, help="the supervisor's systemd unit ('' = none)")
    h.add_argument("--timeout", type=float, default=0.0, help="wait up to this long for a healthy streak")
    h.set_defaults(func=_health_cmd)
    s = usub.add_parser("status", help="running release and slot, pending update, last result (JSON)")
    common(s)
    s.set_defaults(func=_status_cmd)
