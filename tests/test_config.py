"""Tests for agent.config (layered providers.yaml) and agent.providers (choosing the model)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from agent.config import env_refs, expand_env, load_config
from agent.errors import ConfigError, NoModelError
from agent.providers import choose_model


def user_file() -> Path:
    # The documented location on Linux: $XDG_CONFIG_HOME/ownit/providers.yaml.
    return Path(os.environ["XDG_CONFIG_HOME"]) / "ownit" / "providers.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


def repo_file(repo: Path) -> Path:
    return repo / ".ownit" / "providers.yaml"


# --- layering ----------------------------------------------------------------------------------


def test_bundled_catalogue_alone() -> None:
    cfg = load_config()
    assert {"claude-sonnet", "gpt", "gemini", "mistral", "ollama"} <= set(cfg.models)
    assert cfg.default is None
    assert cfg.prefer[0] == "claude-sonnet"
    assert "*.lock" in cfg.review.exclude
    assert len(cfg.sources) == 1


def test_same_review_key_later_layer_wins(repo: Path, tmp_path: Path) -> None:
    write(user_file(), "review:\n  temperature: 0.5\n")
    write(repo_file(repo), "review:\n  temperature: 0.7\n")
    explicit = write(tmp_path / "explicit.yaml", "review:\n  temperature: 0.9\n")

    assert load_config().review.temperature == 0.5
    assert load_config(repo_root=repo).review.temperature == 0.7
    assert load_config(repo_root=repo, explicit=explicit).review.temperature == 0.9


def test_layers_merge_models_by_name_review_by_key_and_replace_lists(
    repo: Path, tmp_path: Path
) -> None:
    write(
        user_file(),
        """
default: mine
prefer: [gpt]
models:
  mine:
    model: openai/my-model
    api_base: http://127.0.0.1:8080/v1
  gpt:
    model: openai/gpt-user
    api_key: ${OPENAI_API_KEY}
    context_window: 64000
review:
  concurrency: 8
  temperature: 0.5
""",
    )
    write(
        repo_file(repo),
        """
prefer: [claude-sonnet]
models:
  gpt:
    model: openai/gpt-repo
review:
  temperature: 0.7
""",
    )
    explicit = write(tmp_path / "explicit.yaml", "default: gemini\nreview:\n  max_questions: 3\n")

    cfg = load_config(repo_root=repo, explicit=explicit)

    # Review settings merge key by key across all four layers.
    assert cfg.review.concurrency == 8  # user
    assert cfg.review.temperature == 0.7  # repo over user
    assert cfg.review.max_questions == 3  # explicit
    assert cfg.review.retries == 2  # bundled, untouched
    assert "*.lock" in cfg.review.exclude  # bundled, untouched
    # A model is replaced whole by name: the repo's gpt has no api_key or window of its own.
    assert cfg.models["gpt"].model == "openai/gpt-repo"
    assert cfg.models["gpt"].api_key is None
    assert cfg.models["gpt"].context_window is None
    # Models not redefined survive from lower layers.
    assert cfg.models["mine"].api_base == "http://127.0.0.1:8080/v1"
    assert cfg.models["claude-sonnet"].model == "anthropic/claude-sonnet-4-5"
    # default and prefer are replaced whole, never concatenated.
    assert cfg.default == "gemini"
    assert cfg.prefer == ("claude-sonnet",)
    assert cfg.sources[1:] == (str(user_file()), str(repo_file(repo)), str(explicit))


def test_default_may_name_a_model_defined_in_a_lower_layer(repo: Path) -> None:
    write(user_file(), "models:\n  mine:\n    model: openai/my-model\n")
    write(repo_file(repo), "default: mine\n")
    assert load_config(repo_root=repo).default == "mine"


def test_empty_layer_changes_nothing(repo: Path) -> None:
    write(repo_file(repo), "# nothing here yet\n")
    assert load_config(repo_root=repo).review == load_config().review


# --- validation errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("modles: {}\n", "modles"),
        ("review:\n  max_chunk_token: 9000\n", "review.max_chunk_token"),
        ("models:\n  gpt:\n    model: openai/x\n    api_bse: http://x\n", "models.gpt.api_bse"),
    ],
)
@pytest.mark.parametrize("layer", ["user", "repo", "explicit"])
def test_unknown_key_names_the_file_and_the_key_path(
    layer: str, text: str, key_path: str, repo: Path, tmp_path: Path
) -> None:
    path = {
        "user": user_file(),
        "repo": repo_file(repo),
        "explicit": tmp_path / "explicit.yaml",
    }[layer]
    write(path, text)
    explicit = path if layer == "explicit" else None
    with pytest.raises(ConfigError) as info:
        load_config(repo_root=repo, explicit=explicit)
    message = info.value.message
    assert str(path) in message
    assert f"{key_path}: unknown key" in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "guess"),
    [
        ("modles: {}\n", "models"),
        ("review:\n  max_chunk_token: 9000\n", "max_chunk_tokens"),
        ("models:\n  gpt:\n    model: openai/x\n    api_bse: http://x\n", "api_base"),
        ("models:\n  gpt:\n    model: openai/x\n    fallback: [y]\n", "fallbacks"),
    ],
)
def test_an_unknown_key_gets_a_did_you_mean(text: str, guess: str, tmp_path: Path) -> None:
    path = write(tmp_path / "explicit.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(explicit=path)
    assert f"did you mean '{guess}'?" in info.value.message


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("review:\n  retries: 11\n", "review.retries: must be at most 10"),
        ("review:\n  concurrency: lots\n", "review.concurrency: must be a whole number"),
        (
            "models:\n  x:\n    model: openai/x\n    structured_output: yes-please\n",
            "must be one of auto, json_schema or prompt",
        ),
        (
            "models:\n  x:\n    model: openai/x\n    api_key: sk-literal-0123456789\n",
            "api_key must be an environment reference",
        ),
    ],
)
def test_config_errors_are_in_plain_words(text: str, plain: str, tmp_path: Path) -> None:
    path = write(tmp_path / "explicit.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(explicit=path)
    message = info.value.message
    assert plain in message
    for pydantic_words in ("Value error", "Input should be", "errors.pydantic.dev"):
        assert pydantic_words not in message


def test_fallbacks_per_model_and_a_default_chain(tmp_path: Path) -> None:
    path = write(
        tmp_path / "explicit.yaml",
        """
fallbacks: [gemini, ollama]
models:
  claude-sonnet:
    model: anthropic/claude-sonnet-4-5
    fallbacks: [gpt, gpt]
""",
    )
    cfg = load_config(explicit=path)
    assert cfg.fallback_chain("claude-sonnet") == ("gpt",)  # its own chain, once each
    assert cfg.fallback_chain("gpt") == ("gemini", "ollama")  # the default chain
    assert cfg.fallback_chain("gemini") == ("ollama",)


@pytest.mark.parametrize(
    "text",
    [
        "fallbacks: [nosuchmodel]\n",
        "models:\n  gpt:\n    model: openai/x\n    fallbacks: [nosuchmodel]\n",
        "models:\n  gpt:\n    model: openai/x\n    fallbacks: [gpt]\n",
    ],
    ids=["default-chain", "per-model", "itself"],
)
def test_a_fallback_naming_an_undefined_model_is_an_error(text: str, tmp_path: Path) -> None:
    path = write(tmp_path / "explicit.yaml", text)
    with pytest.raises(ConfigError, match=r"nosuchmodel|gpt itself") as info:
        load_config(explicit=path)
    assert "(top level)" not in info.value.message


@pytest.mark.parametrize(
    "literal",
    ["sk-live-0123456789abcdef", "$OPENAI_API_KEY", "${OPENAI_API_KEY:-sk-live-0123456789abcdef}"],
)
def test_api_key_must_be_an_environment_reference(literal: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "keys.yaml",
        f'models:\n  gpt:\n    model: openai/gpt-4.1-mini\n    api_key: "{literal}"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(explicit=path)
    message = info.value.message
    assert str(path) in message
    assert "models.gpt.api_key" in message
    assert "environment reference" in message
    # The error must not echo a pasted secret back to the terminal or CI log.
    assert "sk-live-0123456789abcdef" not in message


def test_api_key_reference_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "keys.yaml",
        "models:\n  gpt:\n    model: openai/gpt-4.1-mini\n    api_key: ${MY_KEY}\n",
    )
    assert load_config(explicit=path).models["gpt"].api_key == "${MY_KEY}"


def test_broken_yaml_names_file_and_line(repo: Path) -> None:
    path = write(
        repo_file(repo),
        "version: 1\nreview:\n  concurrency: 2: 3\n  temperature: 0.1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(repo_root=repo)
    message = info.value.message
    assert str(path) in message
    assert "line 3" in message  # "concurrency: 2: 3" is the third line
    assert info.value.hint


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "list.yaml", "- gpt\n- gemini\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(explicit=path)


def test_explicit_config_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(explicit=missing)
    assert str(missing) in info.value.message
    assert "no such file" in info.value.message


def test_missing_user_and_repo_layers_are_optional(repo: Path) -> None:
    assert not user_file().exists() and not repo_file(repo).exists()
    assert load_config(repo_root=repo).sources == load_config().sources


@pytest.mark.parametrize(
    "text", ["default: nosuchmodel\n", "prefer: [gpt, nosuchmodel]\n"], ids=["default", "prefer"]
)
def test_default_or_prefer_naming_an_undefined_model_is_an_error(text: str, tmp_path: Path) -> None:
    path = write(tmp_path / "explicit.yaml", text)
    with pytest.raises(ConfigError, match=r"nosuchmodel|gpt itself") as info:
        load_config(explicit=path)
    assert "(top level)" not in info.value.message


def test_out_of_range_review_setting_is_rejected(repo: Path) -> None:
    write(repo_file(repo), "review:\n  concurrency: 0\n")
    with pytest.raises(ConfigError, match=r"review\.concurrency"):
        load_config(repo_root=repo)


# --- environment references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("http://${HOST}:${PORT:-8080}/v1", {"HOST": "h"}, "http://h:8080/v1"),
        ("${PORT:-8080}", {"PORT": "9090"}, "9090"),
        ("${A:-}", {}, ""),
        ("plain text", {}, "plain text"),
        ("$A is not a reference", {"A": "x"}, "$A is not a reference"),
        ("${A}", {}, None),
        ("${A}-${B:-b}", {"B": "set"}, None),
        # An exported-but-empty key counts as unset: no call goes out with an empty key.
        ("${A}", {"A": ""}, None),
    ],
)
def test_expand_env(value: str, environ: dict[str, str], expected: str | None) -> None:
    assert expand_env(value, environ) == expected


def test_env_refs_lists_only_variables_without_default() -> None:
    assert env_refs("${A} and ${B:-x} and ${C}") == ["A", "C"]
    assert env_refs(None) == []


# --- choosing a model ---------------------------------------------------------------------------


def test_no_key_at_all_explains_every_way_to_configure_one() -> None:
    with pytest.raises(NoModelError) as info:
        choose_model(load_config(), environ={})
    hint = info.value.hint or ""
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "MISTRAL_API_KEY"):
        assert f"export {var}=" in hint
    assert "OPENAI_API_BASE" in hint and "--model openai/" in hint  # OpenAI-compatible server
    assert "--dry-run" in hint
    assert info.value.exit_code == 3


def test_first_usable_model_in_prefer_wins() -> None:
    cfg = load_config()
    assert choose_model(cfg, environ={"OPENAI_API_KEY": "sk-o"}).name == "gpt"
    both = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"}
    assert choose_model(cfg, environ=both).name == "claude-sonnet"  # earlier in prefer
    ollama = choose_model(cfg, environ={"OLLAMA_API_BASE": "http://127.0.0.1:11434"})
    assert ollama.name == "ollama"
    assert ollama.api_base == "http://127.0.0.1:11434"
    assert ollama.api_key is None


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "m-key")
    chosen = choose_model(load_config())
    assert chosen.name == "mistral"
    assert chosen.api_key is not None and chosen.api_key.get_secret_value() == "m-key"


def test_default_wins_over_prefer(tmp_path: Path) -> None:
    cfg = load_config(explicit=write(tmp_path / "c.yaml", "default: gemini\n"))
    env = {"ANTHROPIC_API_KEY": "sk-a", "GEMINI_API_KEY": "g"}
    assert choose_model(cfg, environ=env).name == "gemini"


def test_unusable_default_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    cfg = load_config(explicit=write(tmp_path / "c.yaml", "default: gemini\n"))
    with pytest.raises(NoModelError) as info:
        choose_model(cfg, environ={"ANTHROPIC_API_KEY": "sk-a"})
    assert "GEMINI_API_KEY" in info.value.message
    assert "export GEMINI_API_KEY=" in (info.value.hint or "")


def test_requested_catalogue_name_wins_over_default_and_prefer(tmp_path: Path) -> None:
    cfg = load_config(explicit=write(tmp_path / "c.yaml", "default: gemini\n"))
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "GEMINI_API_KEY": "g"}
    chosen = choose_model(cfg, "gpt", environ=env)
    assert chosen.name == "gpt"
    assert chosen.litellm_model == "openai/gpt-4.1-mini"


def test_requested_ad_hoc_litellm_string() -> None:
    chosen = choose_model(load_config(), "openai/qwen2.5-coder", environ={})
    assert chosen.name == "openai/qwen2.5-coder"
    assert chosen.litellm_model == "openai/qwen2.5-coder"
    assert chosen.provider == "openai"
    # LiteLLM reads the vendor's variables itself; nothing is required up front.
    assert chosen.usable and chosen.api_key is None


def test_requested_bare_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        choose_model(load_config(), "qwen", environ={"OPENAI_API_KEY": "sk-o"})
    assert "'qwen'" in info.value.message
    assert "ownit models" in (info.value.hint or "")


def test_dry_run_gets_a_model_without_any_key() -> None:
    cfg = load_config()
    chosen = choose_model(cfg, environ={}, require_usable=False)
    assert chosen.name in cfg.models
    assert not chosen.usable
    named = choose_model(cfg, "gpt", environ={}, require_usable=False)
    assert named.name == "gpt"
    assert named.missing_env == ("OPENAI_API_KEY",)


def test_resolved_key_is_secret() -> None:
    secret = "sk-live-do-not-print-4242"
    chosen = choose_model(load_config(), environ={"OPENAI_API_KEY": secret})
    assert isinstance(chosen.api_key, SecretStr)
    assert chosen.api_key.get_secret_value() == secret
    for shown in (repr(chosen.api_key), str(chosen.api_key), repr(chosen), str(chosen)):
        assert secret not in shown


def test_a_price_without_its_pair_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text("models:\n  m:\n    model: openai/x\n    input_cost_per_token: 0.000001\n")
    with pytest.raises(ConfigError, match="input_cost_per_token and output_cost_per_token"):
        load_config(explicit=cfg)


@pytest.mark.parametrize(
    "extra",
    ["cache_read_input_token_cost: 0.0000001", "price_source: our contract"],
)
def test_cache_prices_and_a_source_need_the_model_priced_here(tmp_path: Path, extra: str) -> None:
    """A price is one source's: a cache price on top of LiteLLM's rates would mix two."""
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"models:\n  m:\n    model: openai/x\n    {extra}\n")
    with pytest.raises(ConfigError, match="needs input_cost_per_token and output_cost_per_token"):
        load_config(explicit=cfg)


def test_an_infinite_price_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        "models:\n  m:\n    model: openai/x\n"
        "    input_cost_per_token: .inf\n    output_cost_per_token: 0.000001\n"
    )
    with pytest.raises(ConfigError):
        load_config(explicit=cfg)
