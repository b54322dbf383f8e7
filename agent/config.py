"""providers.yaml: the model catalogue and review settings, layered and validated once.

Precedence, lowest first: the bundled ``providers.yaml`` < the user's config file
(``$XDG_CONFIG_HOME/ownit/providers.yaml`` or the platform equivalent) < the repository's
``.ownit/providers.yaml`` < ``--config FILE``. A later layer replaces a model by name and a
review setting key by key; ``default`` and ``prefer`` are replaced whole. Command-line flags are
applied on top by the caller. Unknown keys are errors, so a typo never silently does nothing.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.errors import ConfigError
from agent.validation import describe

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ONLY_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEntry(_Strict):
    """A named model; ``model`` is a LiteLLM model string (``anthropic/claude-sonnet-4-5``)."""

    model: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    # For models LiteLLM's price map does not know (local servers, new releases), or knows
    # wrong. Prices in USD per token; given, they replace LiteLLM's whole price for the model.
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    input_cost_per_token: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    output_cost_per_token: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    # Writing the prompt cache (Anthropic, Bedrock): 5-minute writes, and 1-hour writes.
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cache_creation_input_token_cost_above_1hr: float | None = Field(
        default=None, ge=0, allow_inf_nan=False
    )
    # Where the prices come from and when they were checked; recorded with every call.
    price_source: str | None = Field(default=None, max_length=200)
    # auto and json_schema: ask for the JSON schema through response_format (auto stops asking
    # for the run if the provider refuses the parameter); prompt: only describe it in the prompt.
    structured_output: Literal["auto", "json_schema", "prompt"] = "auto"
    # Models (by name) that take over a call this one could not answer, in order.
    fallbacks: tuple[str, ...] = ()
    # Whether the model runs on infrastructure you control (for local_only). Unset: local when
    # its api_base is a loopback address, or it is a local-server provider with no api_base.
    local: bool | None = None
    # The api_base is an organisation's LiteLLM gateway (proxy): each call carries the run's
    # team, repo, PR and run id as spend tags, and the cost the gateway reports is recorded
    # when ownit cannot price the call. Unset: litellm for ``litellm_proxy/`` models. Vendors
    # are never sent these fields.
    gateway: Literal["litellm"] | None = None

    @field_validator("api_key")
    @classmethod
    def _key_is_a_reference(cls, value: str | None) -> str | None:
        if value is not None and not _ONLY_ENV_REF.match(value):
            raise ValueError(
                "api_key must be an environment reference like ${OPENAI_API_KEY}, never the key"
            )
        return value

    @model_validator(mode="after")
    def _prices_come_in_pairs(self) -> ModelEntry:
        if (self.input_cost_per_token is None) != (self.output_cost_per_token is None):
            raise ValueError("give both input_cost_per_token and output_cost_per_token, or neither")
        # A price is one source's: cache prices on top of LiteLLM's would mix two.
        extra = [name for name in _PRICE_DETAILS if getattr(self, name) is not None]
        if extra and self.input_cost_per_token is None:
            raise ValueError(
                f"{', '.join(extra)} needs input_cost_per_token and output_cost_per_token too"
            )
        return self

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0] if "/" in self.model else "openai"


_PRICE_DETAILS = (
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "price_source",
)

SENSITIVE = (
    ".env",
    ".env.*",
    ".envrc",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    "*.tfvars",
    "credentials.json",
)


# Third-party code checked into the repository: listed, not sent.
VENDORED = (
    "vendor/*",
    "*/vendor/*",
    "third_party/*",
    "*/third_party/*",
    "node_modules/*",
    "*/node_modules/*",
)

# Files a tool writes (minified bundles, protobuf stubs, lock files): listed, not sent. Files
# whose first lines say so (@generated, "Code generated ... DO NOT EDIT.") are found by marker.
GENERATED = (
    "*.min.js",
    "*.min.css",
    "*.js.map",
    "*.css.map",
    "*.pb.go",
    "*.pb.cc",
    "*.pb.h",
    "*_pb2.py",
    "*_pb2.pyi",
    "*_pb2_grpc.py",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lock",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "Cargo.lock",
    "Gemfile.lock",
    "composer.lock",
    "go.sum",
    "flake.lock",
    "mix.lock",
    "pubspec.lock",
    "Podfile.lock",
    "packages.lock.json",
)


class ReviewSettings(_Strict):
    # Diff tokens per call. Unset: as many as the model's window leaves room for after the
    # prompt and the reply; set, it caps that.
    max_chunk_tokens: int | None = Field(default=None, ge=500)
    max_output_tokens: int = Field(default=4096, ge=256)
    concurrency: int = Field(default=4, ge=1, le=64)
    temperature: float = Field(default=0.2, ge=0, le=2)
    timeout_seconds: float = Field(default=120, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=2.0, ge=0)
    repair_attempts: int = Field(default=1, ge=0, le=3)
    max_questions: int = Field(default=15, ge=1)
    # The most one review may cost, in USD: a plan estimated above it is not sent (--max-cost).
    max_cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    # Over it: send nothing (refuse), or the riskiest files that fit, the rest listed.
    over_max_cost: Literal["refuse", "riskiest_first"] = "refuse"
    exclude: tuple[str, ...] = ()
    # Files never sent because they commonly hold credentials; listed as not reviewed.
    sensitive: tuple[str, ...] = SENSITIVE
    # A deleted file: named with its size and reviewed as a deletion (summarize), sent line by
    # line (full), or only listed as not reviewed (skip).
    deleted: Literal["summarize", "full", "skip"] = "summarize"
    vendored: tuple[str, ...] = VENDORED
    generated: tuple[str, ...] = GENERATED
    # Also treat files a generator marked in a comment near their top as generated.
    generated_markers: bool = True
    # Unchanged lines shown above each piece of the change, up to its enclosing function or
    # class, read from the checkout, only into room a chunk has left; per piece, 0 for none.
    context_lines: int = Field(default=30, ge=0, le=1000)
    # git's unchanged lines kept before and after each change (agent.narrow); unset, all the
    # diff has (3 from git by default). Fewer cost less: they are a third of a modified file.
    diff_context_lines: int | None = Field(default=None, ge=0, le=1000)


FileKind = Literal["code", "tests", "docs", "config", "generated"]
RiskLevel = Literal["low", "medium", "high"]


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class RoutingRule(_Strict):
    """Send the files it matches to ``model`` (a name, or a chain: the model, then its
    fallbacks). Every condition given must hold; a rule with none matches everything."""

    name: str | None = Field(default=None, max_length=100)
    paths: tuple[str, ...] = ()  # globs, as review.exclude
    kinds: tuple[FileKind, ...] = ()
    risk: tuple[RiskLevel, ...] = ()
    # The size of the file's change in tokens, as the model is shown it.
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    teams: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()  # globs: "acme/*"
    model: tuple[str, ...] = Field(min_length=1)

    _coerce = field_validator("paths", "kinds", "risk", "teams", "repos", "model", mode="before")(
        _one_or_many
    )

    @model_validator(mode="after")
    def _sizes_in_order(self) -> RoutingRule:
        low, high = self.min_tokens, self.max_tokens
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"min_tokens ({low}) is above max_tokens ({high}): the rule can never match"
            )
        return self

    @property
    def label(self) -> str:
        return self.name or "a rule"


class Triage(_Strict):
    """A model that rates each file's risk before routing (``agent.risk_triage``): the rules'
    ``risk:`` conditions then match on its rating instead of the path's alone. It never lowers a
    path the heuristic rates high, and when it cannot answer the path's risk stands."""

    # A name, or a chain (the model, then the models that take over its call). A single name is
    # used alone, not with its configured fallbacks: the path heuristic is triage's fallback.
    model: tuple[str, ...] = Field(min_length=1)
    # Changed lines shown per file (the first ones, each cut at 160 characters); 0 for the path,
    # kind and size only.
    excerpt_lines: int = Field(default=30, ge=0, le=500)
    # Tokens of files per triage call, at most; the model's window may allow fewer.
    batch_tokens: int = Field(default=8000, ge=500)

    @model_validator(mode="before")
    @classmethod
    def _a_name_alone(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, (str, list)) else value

    _coerce = field_validator("model", mode="before")(_one_or_many)


class Routing(_Strict):
    """Which model reviews which files: the first rule that matches a file decides; files no
    rule matches go to the run's model (``default``, ``prefer`` or ``--model``)."""

    rules: tuple[RoutingRule, ...] = ()
    # Off unless set: the rules' risk conditions use the path heuristic (``agent.kinds``).
    triage: Triage | None = None


Verdict = Literal["understood", "partly", "not_shown"]


class Ownership(_Strict):
    """Who may answer ownit's questions, and what ``ownit check`` requires before merge."""

    # report: grade and show, never fail the job; high: every high-priority question must be
    # shown; all: every question must be.
    require: Literal["report", "high", "all"] = "report"
    # The lowest verdict that counts as ownership shown.
    pass_on: Literal["understood", "partly"] = "understood"
    # Logins (besides the pull request's author) whose answers count.
    answerers: tuple[str, ...] = ()
    # Logins that may override the gate with a recorded reason (`/ownit override <why>`).
    maintainers: tuple[str, ...] = ()
    # The model that grades (a name under models:); default: the review's model.
    model: str | None = None

    @field_validator("answerers", "maintainers", mode="before")
    @classmethod
    def _logins(cls, value: Any) -> Any:
        value = _one_or_many(value)
        if isinstance(value, (list, tuple)):
            return tuple(str(v).strip().removeprefix("@").lower() for v in value)
        return value


class Config(_Strict):
    version: Literal[1] = 1
    default: str | None = None
    prefer: tuple[str, ...] = ()
    # The fallback chain for models that name none of their own.
    fallbacks: tuple[str, ...] = ()
    # The team charged when neither --team/OWNIT_TEAM nor CODEOWNERS names one.
    team: str | None = None
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    routing: Routing = Field(default_factory=Routing)
    ownership: Ownership = Field(default_factory=Ownership)
    # Never send any of the diff to a hosted model: only models that are local (see
    # ModelEntry.local) are used, whatever the default, the rules or the fallbacks say.
    local_only: bool = False
    # Where each layer came from, for messages ("set in .ownit/providers.yaml").
    sources: tuple[str, ...] = ()
    # Where each routing rule is written ("path:line"), in order: for messages about it.
    rule_origins: tuple[str, ...] = ()
    # Where routing.triage is written ("path:line").
    triage_origin: str | None = None

    @model_validator(mode="after")
    def _names_exist(self, info: ValidationInfo) -> Config:
        if info.context and info.context.get("one_layer"):
            return self  # names may refer to models of another layer; checked once merged
        named = [("default", self.default), *(("prefer", n) for n in self.prefer)]
        named += [("fallbacks", n) for n in self.fallbacks]
        named += [("ownership.model", self.ownership.model)]
        for model, entry in self.models.items():
            named += [(f"models.{model}.fallbacks", n) for n in entry.fallbacks]
            if model in entry.fallbacks:
                raise ValueError(f"models.{model}.fallbacks names {model} itself")
        unknown = [
            f"{where}: {name!r}" for where, name in named if name and name not in self.models
        ]
        if unknown:
            raise ValueError(
                "names a model that is not defined under models: " + ", ".join(unknown)
            )
        return self

    def rule_label(self, index: int) -> str:
        """How messages name a rule: its name, else its number, and where it is written."""
        rule = self.routing.rules[index]
        where = self.rule_origins[index] if index < len(self.rule_origins) else ""
        label = f"rule {rule.name!r}" if rule.name else f"rule {index + 1}"
        return f"{label} ({where})" if where else label

    def fallback_chain(self, name: str) -> tuple[str, ...]:
        """The models that take over from ``name``, in order (never ``name`` itself)."""
        entry = self.models.get(name)
        chain = entry.fallbacks if entry and entry.fallbacks else self.fallbacks
        return tuple(n for n in dict.fromkeys(chain) if n != name)


def bundled_config_path() -> Path:
    return Path(str(resources.files("agent") / "_data" / "providers.yaml"))


def user_config_path() -> Path:
    return Path(platformdirs.user_config_dir("ownit")) / "providers.yaml"


def repo_config_path(repo_root: Path) -> Path:
    return repo_root / ".ownit" / "providers.yaml"


def _read_layer(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start + 1})",
            hint="save the file as UTF-8",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"{path}{where}: {problem}", hint="fix the YAML syntax in that file"
        ) from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply to be a providers.yaml") from exc
    except (ValueError, IndexError, KeyError, AttributeError, OverflowError) as exc:
        # PyYAML's scalar constructors raise these for values like 2001-02-30, a 5,000-digit
        # number or "!!int abc", instead of a YAMLError.
        raise ConfigError(
            f"{path}: a value cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
            hint="check the dates, numbers and !!tags in that file",
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in layer.items():
        if key in ("models", "review") and isinstance(value, dict):
            merged[key] = {**(base.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def load_config(*, repo_root: Path | None = None, explicit: Path | None = None) -> Config:
    """Read and validate every layer that exists; ``explicit`` must exist."""
    layers: list[Path] = [bundled_config_path()]
    for candidate in (user_config_path(), repo_root and repo_config_path(repo_root)):
        if candidate and candidate.is_file():
            layers.append(candidate)
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"--config {explicit}: no such file")
        layers.append(explicit)

    data: dict[str, Any] = {}
    origins: tuple[str, ...] = ()
    triage: str | None = None
    for path in layers:
        layer = _read_layer(path)
        lines, triage_line = _routing_lines(path) if "routing" in layer else ([], None)
        try:
            # Validate each layer alone first so an error names the file that holds it.
            Config.model_validate({"models": {}, **layer}, context={"one_layer": True})
        except ValidationError as exc:
            where = _where(path, exc, lines, triage_line)
            raise ConfigError(f"{where}: {_describe(exc)}") from exc
        if "routing" in layer:  # replaced whole by a later layer, as default and prefer are
            origins = tuple(f"{path}:{line}" for line in lines)
            triage = f"{path}:{triage_line}" if triage_line else None
        data = _merge(data, layer)
    try:
        config = Config.model_validate(
            {
                **data,
                "sources": tuple(str(p) for p in layers),
                "rule_origins": origins,
                "triage_origin": triage,
            }
        )
    except ValidationError as exc:
        raise ConfigError(
            f"{layers[-1]} (merged with the layers below it): {_describe(exc)}"
        ) from exc
    check_routing(config)
    return config


def check_routing(config: Config) -> None:
    """Every rule names defined models and can match something no earlier rule takes; a
    triage names defined models, and some rule matches on the risk it rates."""
    rules = config.routing.rules
    if (triage := config.routing.triage) is not None:
        where = (
            f"routing.triage ({config.triage_origin})"
            if config.triage_origin
            else ("routing.triage")
        )
        for name in triage.model:
            if name not in config.models:
                raise ConfigError(
                    f"{where} names model {name!r}, which is not defined under models",
                    hint=f"defined: {', '.join(config.models) or 'none'}",
                )
        if not any(rule.risk for rule in rules):
            raise ConfigError(
                f"{where} is set, but no routing rule matches on risk: its ratings would "
                "route nothing",
                hint="add a rule such as `- {risk: high, model: <your strong model>}`, or "
                "remove routing.triage",
            )
    for i, rule in enumerate(rules):
        for name in rule.model:
            if name not in config.models:
                raise ConfigError(
                    f"{config.rule_label(i)} names model {name!r}, which is not defined under "
                    "models",
                    hint=f"defined: {', '.join(config.models) or 'none'}",
                )
        for j in range(i):
            if _covers(rules[j], rule):
                raise ConfigError(
                    f"{config.rule_label(i)} can never match: every file it matches is taken "
                    f"first by {config.rule_label(j)}",
                    hint="move the narrower rule above the wider one, or remove it",
                )


def _covers(first: RoutingRule, later: RoutingRule) -> bool:
    """Whether ``first`` matches everything ``later`` does (each condition ``first`` sets,
    ``later`` sets no wider): then ``later`` is unreachable. Globs are compared as written."""
    for field in ("paths", "kinds", "risk", "teams", "repos"):
        wide, narrow = getattr(first, field), getattr(later, field)
        if wide and (not narrow or not set(narrow) <= set(wide)):
            return False
    low = (first.min_tokens or 0, later.min_tokens or 0)
    high = (first.max_tokens, later.max_tokens)
    if low[0] > low[1]:
        return False
    return high[0] is None or (high[1] is not None and high[1] <= high[0])


def _routing_lines(path: Path) -> tuple[list[int], int | None]:
    """The line each ``routing.rules`` item starts on, and the line of ``routing.triage``,
    read from the file's YAML nodes."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return [], None  # _read_layer has already read it, or says why not
    routing = _child(root, "routing")
    rules = _child(routing, "rules")
    triage = _child(routing, "triage")
    triage_line = triage.start_mark.line + 1 if triage is not None else None
    if not isinstance(rules, yaml.SequenceNode):
        return [], triage_line
    return [item.start_mark.line + 1 for item in rules.value], triage_line


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if getattr(k, "value", None) == key), None)


def _where(path: Path, exc: ValidationError, lines: list[int], triage: int | None) -> str:
    """The file, and the line of the routing rule (or triage) the first error is in, when it
    is in one."""
    loc = exc.errors()[0]["loc"]
    index = loc[2] if loc[:2] == ("routing", "rules") and len(loc) > 2 else None
    if isinstance(index, int) and index < len(lines):
        return f"{path}:{lines[index]}"
    if loc[:2] == ("routing", "triage") and triage is not None:
        return f"{path}:{triage}"
    return str(path)


def _describe(exc: ValidationError) -> str:
    def known(parent: tuple[int | str, ...]) -> list[str]:
        if parent == ():
            return list(Config.model_fields)
        if parent == ("review",):
            return list(ReviewSettings.model_fields)
        if len(parent) == 2 and parent[0] == "models":
            return list(ModelEntry.model_fields)
        if parent == ("routing",):
            return list(Routing.model_fields)
        if parent == ("routing", "triage"):
            return list(Triage.model_fields)
        return []

    return describe(exc, known=known)


def expand_env(value: str, environ: dict[str, str]) -> str | None:
    """Expand ``${VAR}`` / ``${VAR:-default}``; None when a variable without default is unset."""
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        name, default = match.group(1), match.group(2)
        if environ.get(name):
            return environ[name]
        if default is not None:
            return default
        missing = True
        return ""

    expanded = ENV_REF.sub(sub, value)
    return None if missing else expanded


def env_refs(value: str | None) -> list[str]:
    """The variables a value needs (those without a default)."""
    if not value:
        return []
    return [m.group(1) for m in ENV_REF.finditer(value) if m.group(2) is None]
