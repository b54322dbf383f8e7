"""Which model reviews which file: providers.yaml's routing rules, first match wins.

A rule matches a file on its path, its kind (``agent.kinds``), its risk, the size of its change
in tokens, and the run's team and repository; files no rule matches go to the run's model.
Files routed to the same chain of models are packed together, with that model's window
(``plan.make_routed_plan``), so a rule never makes a chunk too large for its model.

No litellm here: the facts of each model come through ``facts_of`` (``llm.model_facts`` in a
review), so a dry run can show the routing without any key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agent.config import Config, ReviewSettings, RiskLevel, RoutingRule, Triage
from agent.diff import FileDiff
from agent.errors import ConfigError, NoModelError
from agent.kinds import kind_of, risk_level
from agent.parts import Route, render_file
from agent.providers import ModelFacts, ResolvedModel, is_local, resolve
from agent.tokens import count_tokens
from agent.triage import matching

DEFAULT = "default"


@dataclass
class Router:
    """The routing of one run: the rules, the run's model, and the models' facts."""

    config: Config
    default: ResolvedModel
    facts_of: Callable[[ResolvedModel], ModelFacts]
    team: str | None = None
    repo: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _models: dict[str, ResolvedModel] = field(default_factory=dict, init=False)
    _facts: dict[str, ModelFacts] = field(default_factory=dict, init=False)
    # The triage's verdicts by path (``agent.risk_triage``): what the rules' risk conditions
    # match on for the files it rated. Set once, by the triage node, on the run's one router,
    # so the plan and the content cache (which keys a file's review by its model) agree.
    _risks: dict[str, RiskLevel] = field(default_factory=dict, init=False)

    @property
    def rules(self) -> tuple[RoutingRule, ...]:
        return self.config.routing.rules

    @property
    def settings(self) -> ReviewSettings:
        return self.config.review

    @property
    def triage(self) -> Triage | None:
        return self.config.routing.triage

    def rated(self, risks: Mapping[str, RiskLevel]) -> None:
        """Route by the triage's verdicts from now on."""
        self._risks.update(risks)

    def route(self, file: FileDiff, risk: RiskLevel | None = None) -> Route:
        """The first rule that matches ``file`` (``risk``, else the triage's verdict, stands
        for the path's own), else the run's model. A rule that matched on a risk the triage
        gave, other than the path's, says so: "rule 'risky' (triage: high)"."""
        risk = risk or self._risks.get(file.path)
        for i, rule in enumerate(self.rules):
            if self._matches(rule, file, risk):
                chain = rule.model if len(rule.model) > 1 else self.chain(rule.model[0])
                why = f"rule {rule.name!r}" if rule.name else f"rule {i + 1}"
                if rule.risk and risk is not None and risk != risk_level(file):
                    why += f" (triage: {risk})"
                return Route(chain, why)
        return Route(self.chain(self.default.name), DEFAULT)

    def heuristic_route(self, file: FileDiff) -> Route:
        """Where ``file`` would go on its path's risk alone."""
        return self.route(file, risk_level(file))

    def named(self) -> list[str]:
        """Every model routing may call: each rule's, with its fallbacks, in rule order, then
        the triage's."""
        chains = [r.model if len(r.model) > 1 else self.chain(r.model[0]) for r in self.rules]
        if self.triage is not None:
            chains.append(self.triage.model)
        return list(dict.fromkeys(n for chain in chains for n in chain))

    def chain(self, name: str) -> tuple[str, ...]:
        """``name`` and its fallbacks, as configured."""
        return (name, *self.config.fallback_chain(name))

    def model(self, name: str) -> ResolvedModel:
        if name == self.default.name:
            return self.default
        if name not in self._models:
            self._models[name] = resolve(name, self.config.models[name], self.environ)
        return self._models[name]

    def facts(self, name: str) -> ModelFacts:
        if name not in self._facts:
            self._facts[name] = self.facts_of(self.model(name))
        return self._facts[name]

    def check(self, routes: Mapping[Route, int]) -> None:
        """Every model the plan routes chunks to can be used: its variables are set, and it is
        local when the configuration is local-only. Raised before any call is made."""
        for route, chunks in routes.items():
            model = self.model(route.model)
            by = "the run's model" if route.why == DEFAULT else route.why
            if not model.usable:
                raise NoModelError(
                    f"{by} sends {chunks} chunk(s) to {model.name!r}, which needs "
                    f"{', '.join(model.missing_env)}",
                    hint=f"export {model.missing_env[0]}=..., or change the rule in providers.yaml",
                )
            if self.config.local_only and not is_local(model):
                raise ConfigError(
                    f"{by} sends {chunks} chunk(s) to {model.name!r}, a hosted model, and "
                    "local_only is set",
                    hint="route to a local model, or mark a server you control `local: true`",
                )

    def _matches(self, rule: RoutingRule, file: FileDiff, risk: RiskLevel | None) -> bool:
        if rule.teams and (self.team is None or self.team not in rule.teams):
            return False
        if rule.repos and (self.repo is None or not matching(self.repo, rule.repos)):
            return False
        if rule.paths and not matching(file.path, rule.paths):
            return False
        if rule.kinds and kind_of(file, self.settings) not in rule.kinds:
            return False
        if rule.risk and (risk or risk_level(file)) not in rule.risk:
            return False
        if rule.min_tokens is not None or rule.max_tokens is not None:
            size = change_tokens(file)
            if size < (rule.min_tokens or 0):
                return False
            if rule.max_tokens is not None and size > rule.max_tokens:
                return False
        return True


def change_tokens(file: FileDiff) -> int:
    """The size of a file's change as the model is shown it (header and hunks)."""
    return count_tokens(render_file(file))
