"""Settings: the environment contract, flags, and that the README documents every setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from bridge.cli.main import build_parser, main
from bridge.cli.serve import settings_from
from bridge.core.config import CallConfig
from bridge.core.counters import MEANINGS, Count
from bridge.live.settings import CALL_CONFIG_CONVERTED, CALL_CONFIG_RENAMED, Settings, env_name

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_contract_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "MOSBRIDGE_HOST": "127.0.0.9", "MOSBRIDGE_PORT": "9999", "MOSBRIDGE_PUBLIC_URL": "https://x.example/",
        "TWILIO_AUTH_TOKEN": "tok", "MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE": "0", "OPENAI_API_KEY": "sk-1",
        "MOSBRIDGE_OPENAI_URL": "ws://127.0.0.1:1/v1/realtime", "MOSBRIDGE_OPENAI_MODEL": "m",
        "MOSBRIDGE_AI_FORMAT": "pcm24k", "MOSBRIDGE_DATABASE_URL": "sqlite:///x.db",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert (s.host, s.port, s.public_url, s.validate_twilio_signature) == ("127.0.0.9", 9999, "https://x.example",
                                                                           False)
    assert s.twilio_auth_token is not None and s.twilio_auth_token.get_secret_value() == "tok"
    assert s.openai_api_key is not None and s.openai_api_key.get_secret_value() == "sk-1"
    assert (s.openai_url, s.openai_model, s.ai_format, s.database_url) == (
        "ws://127.0.0.1:1/v1/realtime", "m", "pcm24k", "sqlite:///x.db")


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSBRIDGE_PORT", "9999")
    args = build_parser().parse_args(["serve", "--port", "7000", "--ai-format", "pcmu"])
    assert settings_from(args).port == 7000


@pytest.mark.parametrize("argv", [["serve", "--port", "notaport"], ["serve", "--ai-format", "g729"],
                                  ["serve", "--openai-calls-url", "wss://nope"],
                                  ["serve", "--openai-url", "http://nope"]])
def test_bad_settings_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_signature_checks_need_a_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE", raising=False)
    with pytest.raises(SystemExit):
        main(["serve"])
    assert "TWILIO_AUTH_TOKEN" in capsys.readouterr().err


def test_a_taken_port_is_one_clear_error_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**os.environ, "MOSBRIDGE_HOST": "127.0.0.1", "MOSBRIDGE_PORT": str(port),
               "MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE": "0", "MOSBRIDGE_PSEUDONYM_KEY": "k",
               "MOSBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
        done = subprocess.run([sys.executable, "-m", "bridge", "serve"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_readme_documents_every_setting(field: str) -> None:
    assert f"`{env_name(field)}`" in README
    assert f"`--{field.replace('_', '-')}`" in README


def test_every_call_config_field_is_a_setting_or_converted_from_one() -> None:
    for f in fields(CallConfig):
        assert f.name in CALL_CONFIG_CONVERTED or CALL_CONFIG_RENAMED.get(f.name, f.name) in Settings.model_fields, \
            f"CallConfig.{f.name} cannot be set from mosbridge serve"


def test_settings_build_the_call_config_with_the_defaults_written_once() -> None:
    s = Settings(ai_stall_s=1.5, fixed_buffer_ms=80, phi_keys="MRN, patient_id", openai_model="m", pseudonym_key="k",
                 max_conceal_frames=10, opus_bitrate=32000, ai_healthy_s=30)
    c = s.call_config()
    assert (c.ai_stall_s, c.fixed_buffer_ms, c.max_conceal_frames, c.opus_bitrate, c.ai_healthy_s) == (
        1.5, 80.0, 10, 32000, 30.0)
    assert (c.phi_keys, c.model, c.pseudonym_key) == (frozenset({"mrn", "patient_id"}), "m", b"k")
    d, default = Settings().call_config(), CallConfig()
    for f in fields(CallConfig):
        if f.name not in CALL_CONFIG_CONVERTED | set(CALL_CONFIG_RENAMED) | {"instructions"}:
            assert getattr(d, f.name) == getattr(default, f.name), f.name
    assert d.phi_keys == default.phi_keys


def test_readme_lists_every_counter_with_its_meaning() -> None:
    for count in Count:
        assert f"| `{count.value}` | {MEANINGS[count]} |" in README, count
