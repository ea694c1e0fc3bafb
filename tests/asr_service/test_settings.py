"""Settings from env + CLI flags, validated with clear errors."""

from __future__ import annotations

import pytest

from asr_service.auth import Client, ClientTable
from asr_service.settings import Settings, SettingsError, load_settings, settings_table


def test_defaults_match_the_container_contract():
    settings = load_settings([], {})
    assert (settings.host, settings.port, settings.health_port) == ("0.0.0.0", 8765, 8080)  # noqa: S104
    assert (settings.config_path, settings.config_name, settings.device) == ("/app/config", "ctc_sc", "auto")
    assert settings.model_uri is None and settings.model_path is None
    assert settings.drain_timeout_s < 120
    assert not settings.auth_enabled


def test_env_vars_are_read_and_flags_win():
    env = {"SERVER_PORT": "9000", "HEALTH_PORT": "9001", "AUTH_TOKENS": " a, b ,", "LOG_LEVEL": "debug"}
    settings = load_settings(["--port", "9100", "--model-path", "/m.pt"], env)
    assert settings.port == 9100 and settings.health_port == 9001
    assert settings.auth_tokens.names == ("token-1", "token-2") and settings.log_level == "DEBUG"
    assert settings.auth_tokens.match("b") == Client("token-2") and settings.auth_tokens.match("c") is None
    assert settings.model_path == "/m.pt"


def test_seed_flags_keep_working():
    settings = load_settings(
        [
            "--model-path",
            "x.pt",
            "--config-path",
            "/c",
            "--config-name",
            "n",
            "--host",
            "h",
            "--port",
            "1",
            "--health-port",
            "2",
        ],
        {},
    )
    assert (settings.model_path, settings.config_path, settings.config_name) == ("x.pt", "/c", "n")
    assert (settings.host, settings.port, settings.health_port) == ("h", 1, 2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SERVER_PORT": "http"}, "SERVER_PORT must be an integer, got 'http'"),
        ({"SERVER_PORT": "70000"}, "port must be a port number"),
        ({"SERVER_PORT": "8080"}, "port and health_port must differ"),
        ({"LOG_LEVEL": "LOUD"}, "log_level must be one of"),
        ({"DEVICE": "tpu"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"MAX_SESSIONS": "0"}, "max_sessions must be > 0"),
        ({"DRAIN_TIMEOUT_S": "-1"}, "drain_timeout_s must be > 0"),
        ({"MODEL_SHA256": "abc"}, "model_sha256 must be 64 hexadecimal characters"),
        ({"MODEL_URI": "s3://bucket-only"}, "MODEL_URI must look like s3://bucket/key"),
        (
            {"FULL_CONTEXT_STRATEGY": "growing"},
            "FULL_CONTEXT_STRATEGY must be one of chunked, growing-window, got 'growing'",
        ),
        (
            {"CHUNKED_CHUNK_S": "0"},
            "CHUNKED_CHUNK_S / CHUNKED_LEFT_S / CHUNKED_RIGHT_S: chunked chunk_s must be > 0",
        ),
        ({"CHUNKED_LEFT_S": "-1"}, "chunked left_s and right_s must be >= 0"),
        ({"CHUNKED_RIGHT_S": "soon"}, "CHUNKED_RIGHT_S must be a number, got 'soon'"),
    ],
)
def test_bad_values_raise_a_settings_error_naming_them(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings([], env)


def test_tokens_are_not_shown_in_the_settings_repr():
    assert "secret" not in repr(Settings(auth_tokens=ClientTable.from_tokens(["secret"])))


def test_every_setting_has_a_documented_row():
    rows = settings_table()
    assert {"MODEL_URI", "MODEL_SHA256", "SERVER_PORT", "HEALTH_PORT", "DEVICE", "AUTH_TOKENS"} <= {
        r[0] for r in rows
    }
    assert all(flag.startswith("--") and text for _env, flag, _default, text in rows)


def test_tokens_given_programmatically_are_whole_tokens_or_the_env_text():
    assert Settings(auth_tokens=("ab", "cd")).auth_tokens.match("ab") == Client("token-1")  # type: ignore[arg-type]
    from_text = Settings(auth_tokens='{"web": "tok"}')  # type: ignore[arg-type]
    assert from_text.auth_tokens.match("tok") == Client("web") and from_text.auth_tokens.match("t") is None


def test_require_auth_without_tokens_names_the_fix():
    with pytest.raises(SettingsError, match="REQUIRE_AUTH is true but AUTH_TOKENS holds no client token"):
        load_settings(["--require-auth", "true"], {})
    settings = load_settings([], {"REQUIRE_AUTH": "true", "AUTH_TOKENS": '{"web": "tok"}'})
    assert settings.require_auth and settings.auth_tokens.names == ("web",)


def test_full_context_strategy_defaults_to_chunked_and_growing_window_is_selectable():
    from asr_service.decoding.chunked import ChunkedSettings
    from asr_service.settings import chunked_settings

    default = load_settings([], {})
    assert default.full_context_strategy == "chunked"
    assert chunked_settings(default) == ChunkedSettings()  # one set of defaults, two places
    chosen = load_settings(
        ["--chunked-chunk-s", "0.96"], {"FULL_CONTEXT_STRATEGY": "growing-window", "CHUNKED_LEFT_S": "1.6"}
    )
    assert chosen.full_context_strategy == "growing-window"
    assert chunked_settings(chosen) == ChunkedSettings(chunk_s=0.96, left_s=1.6, right_s=1.2)


def test_model_dtype_is_a_float_format_by_name() -> None:
    assert load_settings([], {}).model_dtype == "float32"
    assert load_settings(["--model-dtype", "float16"], {}).model_dtype == "float16"
    assert load_settings([], {"MODEL_DTYPE": "bfloat16"}).model_dtype == "bfloat16"
    with pytest.raises(
        SettingsError, match="MODEL_DTYPE must be one of float32, float16, bfloat16, got 'half'"
    ):
        load_settings([], {"MODEL_DTYPE": "half"})
