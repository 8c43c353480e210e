"""Settings: the environment contract, flags, and that the README documents every setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import build_parser, main
from bridge.config import Settings, env_name
from bridge.serve_cmd import settings_from

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


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
