"""Config: the minimal file works; every bad case gives one line naming the key, exit 2."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import config
from appliance.cli import main

MINIMAL = """\
[capture]
interfaces = ["c0"]
spool = "/data/sluice"
rotate_size = "1G"

[metrics]
listen = "127.0.0.1:9750"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sluice.toml"
    p.write_text(text)
    return p


def test_minimal_file_is_valid_and_fills_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL)
    assert main(["config", "check", str(path)]) == 0
    cfg = config.load(path)
    assert cfg.interfaces == ["c0"]
    assert cfg.get("capture", "rotate_size") == 1024**3
    assert cfg.get("metrics", "listen") == ("127.0.0.1", 9750)
    assert cfg.get("supervisor", "stall_timeout") == 10.0
    assert str(cfg.get("retention", "min_free")) == "10%"
    assert cfg.journal_path == Path("/data/sluice/journal.jsonl")


def test_show_prints_every_key_and_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL + '\n[retention]\nmin_free = "50G"\n')
    assert main(["config", "show", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    for section, keys in config.SCHEMA.items():
        assert f"[{section}]" in shown
        for key in keys:
            assert f"\n{key} = " in shown, key
    again = config.loads(shown)
    assert again.sections == config.load(path).sections
    assert again.get("retention", "min_free").bytes_for(1) == 50 * 1024**3


@pytest.mark.parametrize("floor,size,expected", [("10%", 1000, 100), ("0%", 1000, 0), ("2K", 10**9, 2048),
                                                 (4096, 1, 4096)])
def test_floor_values(floor: str | int, size: int, expected: int) -> None:
    assert config.parse_floor(floor).bytes_for(size) == expected


BAD_CASES = [
    # (name, text, what the one line must contain)
    ("unknown key", MINIMAL.replace('rotate_size = "1G"', 'rotate_size = "1G"\nrotat_size = 3'),
     "[capture] unknown key 'rotat_size'"),
    ("unknown section", MINIMAL + "\n[metric]\nlisten = 1\n", "unknown section [metric]"),
    ("wrong type", MINIMAL.replace('["c0"]', '"c0"'), "[capture] interfaces"),
    ("wrong type int", MINIMAL + "\n[supervisor]\nstall_timeout = \"10s\"\n", "[supervisor] stall_timeout"),
    ("bad size", MINIMAL.replace('"1G"', '"1Q"'), "[capture] rotate_size"),
    ("zero size", MINIMAL.replace('"1G"', "0"), "[capture] rotate_size"),
    ("bad address", MINIMAL.replace("127.0.0.1:9750", "127.0.0.300:9750"), "[metrics] listen"),
    ("bad port", MINIMAL.replace("127.0.0.1:9750", "127.0.0.1:99999"), "[metrics] listen"),
    ("no port", MINIMAL.replace("127.0.0.1:9750", "localhost"), "[metrics] listen"),
    ("missing interfaces", MINIMAL.replace('interfaces = ["c0"]\n', ""), "[capture] interfaces is missing"),
    ("empty interfaces", MINIMAL.replace('["c0"]', "[]"), "[capture] interfaces"),
    ("bad interface name", MINIMAL.replace('["c0"]', '["this-name-is-way-too-long"]'), "[capture] interfaces"),
    ("missing spool", MINIMAL.replace('spool = "/data/sluice"\n', ""), "[capture] spool is missing"),
    ("toml syntax", MINIMAL.replace('rotate_size = "1G"', "rotate_size = "), "TOML syntax error"),
    ("bad floor", MINIMAL + '\n[retention]\nmin_free = "120%"\n', "[retention] min_free"),
    ("bad compression", MINIMAL.replace('rotate_size = "1G"', 'compression = "zstd:99"'), "[capture] compression"),
    ("bad format", MINIMAL.replace('rotate_size = "1G"', 'format = "erf"'), "[capture] format"),
    ("bool as int", MINIMAL + "\n[nic]\ntune = 1\n", "[nic] tune"),
    ("backoff order", MINIMAL + "\n[supervisor]\nbackoff_initial = 30\nbackoff_max = 5\n", "backoff_max"),
    ("compression with pcap", MINIMAL.replace('rotate_size = "1G"', 'compression = "zstd"\nformat = "pcap"'),
     "[capture] compression"),
    ("pcap backend workers", MINIMAL.replace('rotate_size = "1G"', 'backend = "pcap"\nworkers = 2'),
     "[capture] workers = 2"),
    ("host with underscore", MINIMAL.replace('rotate_size = "1G"', 'host = "my_box"'), "[capture] host"),
    ("tiny rotate size", MINIMAL.replace('"1G"', '"1K"'), "[capture] rotate_size"),
    ("section not a table", 'capture = 3\n', "capture = 3 is not allowed (allowed: a [capture] table)"),
    # Values that can never work, refused when checked instead of retried for ever.
    ("host starting with a dot", MINIMAL.replace('rotate_size = "1G"', 'host = ".x"'), "[capture] host"),
    ("host dot dot", MINIMAL.replace('rotate_size = "1G"', 'host = ".."'), "[capture] host"),
    ("host too long", MINIMAL.replace('rotate_size = "1G"', f'host = "{"a" * 64}"'), "[capture] host"),
    ("spool under /proc", MINIMAL.replace('"/data/sluice"', '"/proc/self/cwd"'), "[capture] spool"),
    ("spool under /sys", MINIMAL.replace('"/data/sluice"', '"/sys/../sys/fs"'), "[capture] spool"),
    ("relative spool", MINIMAL.replace('"/data/sluice"', '"data/sluice"'), "[capture] spool"),
    ("interface dot dot", MINIMAL.replace('["c0"]', '[".."]'), "[capture] interfaces"),
    ("interface with slash", MINIMAL.replace('["c0"]', '["a/b"]'), "[capture] interfaces"),
    ("interface alias", MINIMAL.replace('["c0"]', '["eth0:1"]'), "[capture] interfaces"),
    ("rings beyond memory", MINIMAL.replace('rotate_size = "1G"', "ring_mb = 65536\nworkers = 64"),
     "of this machine's"),
    ("arabic-indic port digits", MINIMAL.replace("127.0.0.1:9750", "127.0.0.1:\u0669\u0667\u0665\u0660"),
     "[metrics] listen"),
    ("rotate size beyond 64 bits", MINIMAL.replace('"1G"', "18446744073709551617"), "[capture] rotate_size"),
    ("size of 400 digits", MINIMAL.replace('"1G"', "9" * 400), "[capture] rotate_size"),
    ("size string of 400 digits", MINIMAL.replace('"1G"', '"' + "9" * 400 + '"'), "[capture] rotate_size"),
    ("seconds of 400 digits", MINIMAL + "\n[supervisor]\nstall_timeout = " + "9" * 400 + "\n",
     "[supervisor] stall_timeout"),
    ("infinite seconds", MINIMAL + "\n[supervisor]\nstall_timeout = inf\n", "[supervisor] stall_timeout"),
    ("nested 5000 deep", MINIMAL.replace('"1G"', "[" * 5000 + "]" * 5000), "nested too deeply"),
    ("nested 50 deep", MINIMAL.replace('"1G"', "[" * 50 + "]" * 50), "[capture] rotate_size"),
    ("NUL byte", MINIMAL + "\0", "TOML syntax error"),
]


@pytest.mark.parametrize("name,text,needle", [c for c in BAD_CASES if c[2]], ids=[c[0] for c in BAD_CASES if c[2]])
def test_bad_config_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str,
                                    needle: str) -> None:
    path = write(tmp_path, text)
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert needle in err, err
    assert "allowed" in err or "syntax" in err, err
    assert str(path) in err


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def test_cli_process_prints_no_traceback(tmp_path: Path) -> None:
    """The installed entry point, as an operator runs it."""
    path = write(tmp_path, MINIMAL.replace('"1G"', '"lots"'))
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "config", "check", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "rotate_size" in proc.stderr


def test_writer_flags_follow_config(tmp_path: Path) -> None:
    from appliance.writer import writer_argv

    cfg = config.loads(MINIMAL.replace("/data/sluice", str(tmp_path)) + '\n'.join([
        "", "[supervisor]", "stats_interval = 0.5"]) + '\n', "t")
    cfg.sections["capture"].update(filter="udp port 53", compression="zstd:3", host="box1", slice="header")
    argv = writer_argv(cfg, "c0", "/bin/sluice-capture")
    joined = " ".join(argv)
    assert f"-i c0 -w {tmp_path}/box1 --date-dirs --host box1" in joined
    assert "--rotate-size 1G" in joined and "--stats-interval 0.5" in joined
    assert argv[argv.index("--filter") + 1] == "udp port 53"
    assert "--compress zstd:3" in joined and "--slice header" in joined


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "supervisor.md").read_text()
    for section, keys in config.SCHEMA.items():
        assert f"### [{section}]" in doc
        part = doc.split(f"### [{section}]", 1)[1].split("\n### ", 1)[0]
        for key, spec in keys.items():
            assert f"| `{key}` |" in part, f"[{section}] {key} is not in docs/supervisor.md"
            row = next(line for line in part.splitlines() if line.startswith(f"| `{key}` |"))
            assert f"| {spec.allowed} |" in row, f"[{section}] {key}: the docs' allowed values drifted: {row}"


def test_the_typed_sections_have_exactly_the_schema_keys(tmp_path: Path) -> None:
    import dataclasses

    cfg = config.loads(MINIMAL, "t")
    for section, keys in config.SCHEMA.items():
        typed = getattr(cfg, section)
        assert [f.name for f in dataclasses.fields(typed)] == list(keys), section
        for key in keys:
            assert getattr(typed, key) == cfg.sections[section][key]
    assert cfg.retention.min_free.percent == 10.0 and cfg.metrics.listen == ("127.0.0.1", 9750)


def test_show_keeps_every_digit_of_a_float(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MINIMAL + "[retention]\nmin_age = 1234567.0\ninterval = 0.30000000000000004\n"
    path = write(tmp_path, text)
    assert main(["config", "show", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "min_age = 1234567.0\n" in shown and "interval = 0.30000000000000004\n" in shown
    assert config.loads(shown).sections == config.loads(text).sections


def test_the_example_config_has_every_key_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    shipped = (Path(__file__).resolve().parents[2] / "config" / "sluice.example.toml").read_text()
    assert main(["config", "example"]) == 0
    assert capsys.readouterr().out == shipped, "config/sluice.example.toml is stale: sluice config example > it"
    import re

    uncommented = re.sub(r"^# (\w+ = )", r"\1", shipped, flags=re.M)
    cfg = config.loads(uncommented, "example")
    for section, keys in config.SCHEMA.items():
        for key, spec in keys.items():
            assert f"\n{key} = " in uncommented, f"[{section}] {key} is not in the example"
            if (section, key) not in config.REQUIRED:
                assert cfg.sections[section][key] == spec.check(spec.default), (section, key)
    assert config.loads(shipped, "example").interfaces == ["c0"]  # as shipped: the defaults apply


def test_writer_argv_carries_user_readers_group_and_anonymize_key(tmp_path: Path) -> None:
    from appliance.writer import writer_argv

    cfg = config.loads(MINIMAL.replace("/data/sluice", str(tmp_path)) + '\n[privacy]\nanonymize_key = "/k"\n', "t")
    cfg.sections["capture"].update(user="nobody", readers_group="nogroup")
    argv = writer_argv(cfg, "c0", "/bin/sluice-capture")
    assert argv[argv.index("--user") + 1] == "nobody" and argv[argv.index("--group") + 1] == "nogroup"
    assert argv[argv.index("--anonymize") + 1] == "/k"
    plain = writer_argv(config.loads(MINIMAL.replace("/data/sluice", str(tmp_path)), "t"), "c0", "/bin/sluice-capture")
    assert not {"--user", "--group", "--anonymize"} & set(plain)


def test_writer_argv_carries_the_key_folder_and_the_payload_policy(tmp_path: Path) -> None:
    from appliance.writer import writer_argv

    text = MINIMAL.replace("/data/sluice", str(tmp_path))
    cfg = config.loads(text + '\n[privacy]\nkey_dir = "/keys"\nkey_rotate_seconds = 3600\n'
                              'drop_payload = "tcp port 80"\n', "t")
    argv = writer_argv(cfg, "c0", "/bin/sluice-capture")
    assert argv[argv.index("--key-dir") + 1] == "/keys" and argv[argv.index("--key-rotate-seconds") + 1] == "3600"
    assert argv[argv.index("--drop-payload") + 1] == "tcp port 80" and "--slice" not in argv
    cfg = config.loads(text.replace("[capture]", '[capture]\nslice = "header"') +
                       '\n[privacy]\nkeep_payload = "udp port 53"\n', "t")
    argv = writer_argv(cfg, "c0", "/bin/sluice-capture")
    assert argv[argv.index("--keep-payload") + 1] == "udp port 53" and "--slice" in argv
    assert not {"--key-dir", "--key-socket", "--keep-payload", "--drop-payload"} & set(
        writer_argv(config.loads(text, "t"), "c0", "x"))
    cfg = config.loads(text + '\n[privacy]\nkey_socket = "/run/sluice-keyd.sock"\nkey_rotate_seconds = 60\n', "t")
    argv = writer_argv(cfg, "c0", "/bin/sluice-capture")
    assert argv[argv.index("--key-socket") + 1] == "/run/sluice-keyd.sock" and "--key-dir" not in argv
    assert argv[argv.index("--key-rotate-seconds") + 1] == "60"


@pytest.mark.parametrize(("extra", "message"), [
    ('[privacy]\nkeep_payload = "udp port 53"\n', "keep_payload is not allowed with [capture] slice = \"none\""),
    ('[capture]\nslice = "header"\n[privacy]\ndrop_payload = "udp"\n', "drop_payload is not allowed"),
    ('[privacy]\nkeep_payload = "udp"\ndrop_payload = "tcp"\n', "keep_payload and drop_payload are both set"),
    ('[privacy]\nanonymize_key = "/k"\nkey_dir = "/d"\n', "anonymize_key and key_dir are both set"),
    ('[privacy]\nkey_socket = "/s"\nkey_dir = "/d"\n', "key_dir and key_socket are both set"),
    ('[capture]\nformat = "pcap"\n[privacy]\nkey_socket = "/s"\n', "anonymisation is not allowed"),
    ('[capture]\nformat = "pcap"\n[privacy]\nkey_dir = "/d"\n', "anonymisation is not allowed"),
    ('[privacy]\nkey_rotate_seconds = 0\n', "key_rotate_seconds = 0 is not allowed"),
])
def test_privacy_keys_that_do_not_go_together_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    text = MINIMAL.replace("/data/sluice", str(tmp_path))
    if extra.startswith("[capture]"):  # merged into the existing table: TOML has one [capture]
        cap, _, rest = extra.partition("\n[privacy]")
        text = text.replace("[capture]", cap)
        extra = "[privacy]" + rest if rest else ""
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.loads(text + "\n" + extra, "t")


@pytest.mark.parametrize(("mode", "needle"), [(0o750, "of mode 0750, open to group or others"), (None, "No such file"),
                                              (0o700, ""), ("nobody", "not owned by the user the supervisor runs as")])
def test_config_check_wants_a_private_key_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 mode: int | str | None, needle: str) -> None:
    keys = tmp_path / "keys"
    if mode is not None:
        keys.mkdir()
        keys.chmod(0o700 if mode == "nobody" else mode)
    if mode == "nobody":  # the writers' user: the key keeper stays the supervisor's, which must own it
        os.chown(keys, pwd.getpwnam("nobody").pw_uid, -1)
    path = write(tmp_path, MINIMAL.replace("/data/sluice", str(tmp_path / "spool")) +
                 f'\n[privacy]\nkey_dir = "{keys}"\n')
    rc = main(["config", "check", str(path)])
    err = capsys.readouterr().err
    if not needle:
        assert rc == 0, err
        return
    assert rc == 2 and err.count("\n") == 1 and needle in err and "key_dir" in err, err
