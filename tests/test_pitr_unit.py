"""PITR settings, the rendered pgbackrest.conf, `info` parsing and the end-of-recovery check,
without servers (the servers are in tests/test_pitr.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.cli import main
from runtime.errors import ConfigError
from runtime.pitr.info import parse_info
from runtime.pitr.login import refusal
from runtime.pitr.pgbackrest import render_config
from runtime.pitr.restore import recovery_outcome
from runtime.settings import PitrSettings, load_settings


def pitr_from_env(env: dict[str, str]) -> PitrSettings:
    """The `pitr` section from PITR_* variables alone (an operator's host)."""
    settings = load_settings({}, env=env, require=()).pitr
    assert settings is not None
    return settings


S3_ENV = {
    "PITR_REPO_TYPE": "s3",
    "PITR_S3_BUCKET": "wal",
    "PITR_S3_REGION": "eu-west-1",
    "PITR_S3_ENDPOINT": "s3.eu-west-1.amazonaws.com",
    "PITR_S3_KEY": "AKIAEXAMPLE",
    "PITR_S3_KEY_SECRET": "s3-secret-value",
    "PITR_CIPHER_PASS": "cipher-secret-value",
}


def test_defaults_are_a_posix_repository_without_encryption() -> None:
    assert load_settings({}, env={}, require=()).pitr is None  # no section, no PITR_*
    settings = load_settings({"pitr": {}}, env={}, require=()).pitr
    assert settings == PitrSettings()
    assert "repo1-cipher-type" not in render_config(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PITR_REPO_TYPE": "nfs"}, "PITR_REPO_TYPE: got 'nfs'; allowed: one of posix, s3"),
        ({"PITR_RETENTION_FULL": "0"}, "PITR_RETENTION_FULL: got '0'; allowed: an integer from 1"),
        ({"PITR_PG_DATA": "data"}, "PITR_PG_DATA: got 'data'; allowed: an absolute path"),
        ({"PITR_FULL_SCHEDULE": "weekly"}, "PITR_FULL_SCHEDULE: got 'weekly'; allowed: a five"),
        ({"PITR_COMPRESS_TYPE": "xz"}, "PITR_COMPRESS_TYPE: got 'xz'; allowed: one of lz4"),
        (
            {**S3_ENV, "PITR_S3_VERIFY_TLS": "maybe"},
            "PITR_S3_VERIFY_TLS: got 'maybe'; allowed: true/false",
        ),
        ({"PITR_STANZA": "a b"}, "PITR_STANZA: got 'a b'; allowed: letters"),
        (
            {"PITR_REPO_TYPE": "s3"},
            "PITR_S3_BUCKET (pitr.repository.s3_bucket): got None; allowed:",
        ),
        (
            {**S3_ENV, "PITR_S3_KEY_SECRET": ""},
            "PITR_S3_KEY_SECRET (pitr.repository.s3_secret_key): got None; allowed: a secret",
        ),
        ({"PITR_CIPHER_PASS_FILE": "/nonexistent/pass"}, "PITR_CIPHER_PASS_FILE: got"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        pitr_from_env(env)
    assert str(caught.value).startswith(message)


def test_secrets_come_from_files_and_never_show_in_repr(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("from-a-file\n")
    settings = pitr_from_env({**S3_ENV, "PITR_CIPHER_PASS_FILE": str(tmp_path / "pass")})
    assert settings.cipher_pass is not None and settings.cipher_pass.reveal() == "from-a-file"
    shown = repr(settings)
    assert "from-a-file" not in shown and "s3-secret-value" not in shown
    assert "AKIAEXAMPLE" not in shown


def test_rendered_config_carries_the_s3_repository_and_tls_verification_by_default() -> None:
    text = render_config(pitr_from_env(S3_ENV))
    lines = set(text.splitlines())
    assert {
        "repo1-type=s3",
        "repo1-s3-bucket=wal",
        "repo1-s3-region=eu-west-1",
        "repo1-s3-endpoint=s3.eu-west-1.amazonaws.com",
        "repo1-s3-uri-style=host",
        "repo1-storage-port=443",
        "repo1-storage-verify-tls=y",
        "repo1-s3-key-secret=s3-secret-value",
        "repo1-cipher-type=aes-256-cbc",
        "repo1-cipher-pass=cipher-secret-value",
        "[main]",
        "pg1-path=/var/lib/postgresql/data/pgdata",
    } <= lines
    off = render_config(pitr_from_env({**S3_ENV, "PITR_S3_VERIFY_TLS": "false"}))
    assert "repo1-storage-verify-tls=n" in off.splitlines()


INFO = [
    {
        "name": "main",
        "cipher": "aes-256-cbc",
        "status": {"code": 0, "message": "ok"},
        "archive": [
            {"id": "15-1", "min": "000000010000000000000001", "max": "000000010000000000000009"}
        ],
        "backup": [
            {
                "label": "20261127-100000F_20261127-110000D",
                "type": "diff",
                "timestamp": {"start": 1795777200, "stop": 1795777203},
                "info": {"size": 10, "repository": {"delta": 5, "size": 5}},
                "archive": {
                    "start": "000000010000000000000007",
                    "stop": "000000010000000000000007",
                },
                "error": False,
            },
            {
                "label": "20261127-100000F",
                "type": "full",
                "timestamp": {"start": 1795773600, "stop": 1795773604},
                "info": {"size": 10, "repository": {"delta": 5, "size": 5}},
                "archive": {
                    "start": "000000010000000000000002",
                    "stop": "000000010000000000000002",
                },
                "error": False,
            },
        ],
    }
]


def test_info_window_starts_at_the_oldest_backups_stop_and_ends_at_the_newest_wal() -> None:
    info = parse_info(json.dumps(INFO), "main")
    assert [b.type for b in info.backups] == ["full", "diff"]
    assert info.earliest_restorable == datetime.fromtimestamp(1795773604, UTC)
    assert info.wal_max == "000000010000000000000009"
    last_full = info.last_backup("full")
    assert last_full is not None and last_full.label == "20261127-100000F"


def test_recovery_that_ends_before_the_archive_does_is_not_exact() -> None:
    info = parse_info(json.dumps(INFO), "main")
    seg = 16 << 20
    early = recovery_outcome("LOG:  redo done at 0/5000060 system usage", None, info, seg)
    assert not early.exact and "up to 000000010000000000000009" in early.detail
    full = recovery_outcome("LOG:  redo done at 0/9000100", None, info, seg)
    assert full.exact
    target = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    assert not recovery_outcome("LOG:  redo done at 0/9000100", target, info, seg).exact
    reached = recovery_outcome(
        "LOG:  recovery stopping before commit of transaction 9, time 2026-11-27 10:30:01+00",
        target,
        info,
        seg,
    )
    assert reached.exact and reached.stop_line is not None


def test_bad_command_line_or_settings_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["pitr", "restore", "--latest", "--target-time", "x"])
    assert usage.value.code == 2
    assert "--target-time: not allowed with argument --latest" in capsys.readouterr().err
    monkeypatch.setenv("PITR_PROCESS_MAX", "lots")
    assert main(["pitr", "info"]) == 2
    err = capsys.readouterr().err
    assert err == "error: PITR_PROCESS_MAX: got 'lots'; allowed: an integer from 1 to 999\n"


RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "runbook-data-tier.md"


def test_every_runbook_command_parses_and_every_named_test_exists() -> None:
    from runtime.cli import build_parser

    text = RUNBOOK.read_text().replace("\\\n", " ")
    commands = re.findall(r"^\s*python -m runtime (pitr .+)$", text, flags=re.M)
    assert len(commands) >= 6
    for command in commands:
        args = build_parser().parse_args(command.split())
        assert callable(args.run)
    tests = (Path(__file__).parent / "test_pitr.py").read_text()
    named = re.findall(r"Test: `(test_\w+)`|\(`(test_\w+)`\)", RUNBOOK.read_text())
    names = {a or b for a, b in named} | set(re.findall(r"^  Test: `(test_\w+)`", text, re.M))
    assert len(names) >= 5
    for name in names:
        assert f"def {name}(" in tests


def test_a_provided_config_file_is_used_as_it_is_and_never_rewritten(tmp_path: Path) -> None:
    from runtime.pitr.pgbackrest import PitrError, prepare_config, write_config

    conf = tmp_path / "pgbackrest.conf"
    conf.write_text("[global]\nrepo1-path=/stack/repo\n")
    conf.chmod(0o400)  # read-only, as the stack mounts it
    before = (conf.read_bytes(), conf.stat().st_mtime_ns)
    stack = {"pitr": {"config_file": str(conf), "cipher_pass": "x" * 32}}
    settings = load_settings(stack, env={}, require=()).pitr
    assert settings is not None and settings.config_provided
    assert prepare_config(settings) == conf
    with pytest.raises(PitrError, match="refusing to rewrite"):
        write_config(settings)
    assert (conf.read_bytes(), conf.stat().st_mtime_ns) == before
    assert not (tmp_path / "log").exists()


def test_without_a_provided_file_the_runtime_renders_its_own(tmp_path: Path) -> None:
    from runtime.pitr.pgbackrest import prepare_config

    conf = tmp_path / "etc" / "pgbackrest.conf"
    env = {
        "PITR_CONFIG": str(conf),
        "PITR_REPO_PATH": str(tmp_path / "repo"),
        "PITR_LOG_PATH": str(tmp_path / "log"),
        "PITR_LOCK_PATH": str(tmp_path / "lock"),
        "PITR_SPOOL_PATH": str(tmp_path / "spool"),
    }
    settings = pitr_from_env(env)
    assert not settings.config_provided
    assert prepare_config(settings) == conf
    assert f"repo1-path={tmp_path / 'repo'}" in conf.read_text().splitlines()
    assert conf.stat().st_mode & 0o777 == 0o600
    # the stack names a file that is not there (an operator's host): rendered too
    stack = load_settings({"pitr": {"config_file": str(tmp_path / "no.conf")}}, env={}, require=())
    assert stack.pitr is not None and not stack.pitr.config_provided


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        (
            {"pitr": {"config_file": "/nonexistent/pgbackrest.conf"}},
            {"PITR_CONFIG_PROVIDED": "true"},
            "pitr.config_file: got '/nonexistent/pgbackrest.conf'; allowed: a readable",
        ),
        ({"pitr": {"retention_full": 0}}, {}, "pitr.retention_full: got 0; allowed: an integer"),
        ({"pitr": {"repository": {"type": "gcs"}}}, {}, "pitr.repository.type: got 'gcs'"),
        (
            {"pitr": {"cipher_type": "aes-256-cbc"}},
            {},
            "PITR_CIPHER_PASS (pitr.cipher_pass): got None; allowed: a passphrase",
        ),
        ({"pitr": {"full_schedule": "weekly"}}, {}, "pitr.full_schedule: got 'weekly'"),
        ({"pitr": "posix"}, {}, "pitr: got 'str'; allowed: an object"),
        ({"pitr": {"retention_full": 3}}, {"PITR_RETENTION_FULL": "x"}, "PITR_RETENTION_FULL: got"),
    ],
)
def test_a_bad_pitr_section_names_the_app_config_path_or_the_variable(
    config: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env=env, require=())
    assert str(caught.value).startswith(message)


def test_environment_variables_override_single_fields_of_the_stacks_section() -> None:
    stack = {
        "pitr": {
            "stanza": "main",
            "repository": {"type": "posix", "path": "/var/lib/pgbackrest"},
            "cipher_type": "aes-256-cbc",
            "cipher_pass": "from-the-stack",
            "retention_full": 2,
        }
    }
    settings = load_settings(stack, env={"PITR_RETENTION_FULL": "5"}, require=()).pitr
    assert settings is not None
    assert (settings.retention_full, settings.repo_path) == (5, "/var/lib/pgbackrest")
    assert settings.cipher_pass is not None and settings.cipher_pass.reveal() == "from-the-stack"


class _FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_full_backup_wins_and_a_differential_it_covers_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The schedule decisions alone (the backups themselves run in tests/test_pitr.py and
    tests/test_sidecar.py): `take_backup` records a run instead of calling pgBackRest."""
    from runtime.pitr import schedule
    from runtime.pitr.metrics import BackupRun, PitrState

    ran: list[str] = []
    clock = _FakeClock(datetime(2026, 11, 29, 1, 0, 30, tzinfo=UTC))  # Sunday 01:00:30

    def fake(settings: PitrSettings, type_: str, state: PitrState | None = None) -> BackupRun:
        ran.append(type_)
        run = BackupRun(type_, True, clock.now.timestamp(), 1.0, f"label-{type_}")
        assert state is not None
        state.record(run)
        return run

    monkeypatch.setattr(schedule, "take_backup", fake)
    same_minute = pitr_from_env(
        {"PITR_FULL_SCHEDULE": "0 1 * * *", "PITR_DIFF_SCHEDULE": "0 1 * * *"}
    )
    backups = schedule.PhysicalBackups(same_minute, PitrState(), clock=clock)
    assert (backups.diff.tick(), backups.full.tick()) == ("ran", "ran")  # diff first: skipped
    assert backups.diff.tick() == "not_due" and ran == ["full"]
    backups = schedule.PhysicalBackups(same_minute, PitrState(), clock=clock)
    assert (backups.full.tick(), backups.diff.tick()) == ("ran", "ran")  # full first
    assert ran == ["full", "full"]
    # the defaults: full on Sunday, diff Monday-Saturday; a fresh start runs the full only
    defaults = schedule.PhysicalBackups(PitrSettings(), PitrState(), clock=clock)
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 09:00
    assert (defaults.diff.tick(), defaults.full.tick()) == ("ran", "ran")
    assert ran == ["full", "full", "full"]
    clock.now = datetime(2026, 12, 1, 1, 0, 5, tzinfo=UTC)  # Tuesday 01:00: the diff is due
    assert (defaults.full.tick(), defaults.diff.tick()) == ("not_due", "ran")
    assert ran == ["full", "full", "full", "diff"]


def test_a_recovery_that_ends_early_names_its_segments_with_their_timeline() -> None:
    info = parse_info(json.dumps(INFO), "main")
    seg = 16 << 20
    early = recovery_outcome("LOG:  redo done at 0/5000060 system usage", None, info, seg)
    assert "(WAL segment 000000010000000000000005)" in early.detail
    assert "the next segment (000000010000000000000006) is missing" in early.detail
    # recovery on timeline 2 (a restore after an earlier promotion): the segments are its own
    log = (
        'LOG:  restored log file "000000020000000000000004" from archive\n'
        "LOG:  redo done at 0/4FFFFF8 system usage\n"
    )
    on_two = recovery_outcome(log, None, info, seg)
    assert "(WAL segment 000000020000000000000004)" in on_two.detail
    assert "(000000020000000000000005)" in on_two.detail
    # the segment after the last of a log file is the next log's first
    wrap = parse_info(json.dumps(INFO).replace("000000010000000000000009",
                                               "000000010000000200000001"), "main")  # fmt: skip
    edge = recovery_outcome("LOG:  redo done at 1/FF000060", None, wrap, seg)
    assert "(WAL segment 0000000100000001000000FF)" in edge.detail
    assert "(000000010000000200000000)" in edge.detail


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            'connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: '
            'FATAL:  role "backup" does not exist',
            'role "backup" does not exist',
        ),
        (
            'connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: '
            'FATAL:  Peer authentication failed for user "app"',
            'Peer authentication failed for user "app"',
        ),
        (
            'connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: '
            'FATAL:  no pg_hba.conf entry for host "[local]", user "x", database "postgres"',
            'no pg_hba.conf entry for host "[local]", user "x", database "postgres"',
        ),
        (
            'connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: '
            "fe_sendauth: no password supplied",
            'connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: '
            "fe_sendauth: no password supplied",
        ),
    ],
)
def test_a_refused_login_is_told_apart(message: str, reason: str) -> None:
    assert refusal(Exception(message)) == reason


@pytest.mark.parametrize(
    "message",
    [
        'connection is bad: connection to server on socket "/s/.s.PGSQL.5432" failed: No such '
        "file or directory\n\tIs the server running locally and accepting connections on that "
        "socket?",
        'connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: FATAL:  '
        "the database system is starting up",
        'connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: FATAL:  '
        "the database system is not yet accepting connections\nDETAIL:  Consistent recovery "
        "state has not been yet reached.",
    ],
)
def test_a_server_that_is_not_up_yet_is_not_a_refused_login(message: str) -> None:
    assert refusal(Exception(message)) is None
