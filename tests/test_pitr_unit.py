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
from runtime.pitr.pgbackrest import render_config
from runtime.pitr.restore import recovery_outcome
from runtime.pitr.settings import PitrSettings, load_pitr_settings

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
    settings = load_pitr_settings({})
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
        ({"PITR_REPO_TYPE": "s3"}, "PITR_S3_BUCKET: got None; allowed:"),
        ({**S3_ENV, "PITR_S3_KEY_SECRET": ""}, "PITR_S3_KEY_SECRET: got None; allowed: a secret"),
        ({"PITR_CIPHER_PASS_FILE": "/nonexistent/pass"}, "PITR_CIPHER_PASS_FILE: got"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pitr_settings(env)
    assert str(caught.value).startswith(message)


def test_secrets_come_from_files_and_never_show_in_repr(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("from-a-file\n")
    settings = load_pitr_settings({**S3_ENV, "PITR_CIPHER_PASS_FILE": str(tmp_path / "pass")})
    assert settings.cipher_pass is not None and settings.cipher_pass.reveal() == "from-a-file"
    shown = repr(settings)
    assert "from-a-file" not in shown and "s3-secret-value" not in shown
    assert "AKIAEXAMPLE" not in shown


def test_rendered_config_carries_the_s3_repository_and_tls_verification_by_default() -> None:
    text = render_config(load_pitr_settings(S3_ENV))
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
        "pg1-path=/var/lib/postgresql/data",
    } <= lines
    off = render_config(load_pitr_settings({**S3_ENV, "PITR_S3_VERIFY_TLS": "false"}))
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


def test_the_weekly_full_wins_over_the_daily_diff_at_the_same_minute() -> None:
    from runtime.pitr.schedule import next_backup

    settings = load_pitr_settings({})  # full: Sunday 01:00, diff: Monday-Saturday 01:00
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert next_backup(settings, saturday_noon) == (
        datetime(2026, 11, 29, 1, 0, tzinfo=UTC),
        "full",
    )
    sunday_noon = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert next_backup(settings, sunday_noon) == (datetime(2026, 11, 30, 1, 0, tzinfo=UTC), "diff")
    both = load_pitr_settings(
        {"PITR_FULL_SCHEDULE": "0 1 * * *", "PITR_DIFF_SCHEDULE": "0 1 * * *"}
    )
    assert next_backup(both, sunday_noon)[1] == "full"
