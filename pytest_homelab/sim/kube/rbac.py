"""Per-namespace permissions of the simulated cluster's one user, and ``SelfSubjectAccessReview``.

By default the user may do everything (as the demo's kubeconfig does). A test narrows one
namespace to a set of rules; requests outside them get 403 Forbidden with the Status body an
API server writes, and ``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` answers
what ``kubectl auth can-i`` asks, from the same rules:

    sim.rbac.restrict("shop-dev", ["list,watch deployments.apps", "get pods/log"])
    sim.rbac.restrict("jobs-dev", [])  # nothing at all there

A rule is ``VERBS RESOURCE[.GROUP][/SUBRESOURCE]`` with ``*`` for any verb or resource. The
cluster scope (namespaces, lists across every namespace) is restricted with the namespace ``""``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pytest_homelab.sim.kube.store import ApiError

Obj = dict[str, Any]
USER = "sim"
"""The user the simulator's kubeconfig authenticates as (its token is ``sim``)."""
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_ATTRIBUTES = ("namespace", "verb", "group", "version", "resource", "subresource", "name")


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    resource: str
    group: str
    subresource: str

    @classmethod
    def parse(cls, text: str) -> Rule:
        verbs, _, what = text.strip().partition(" ")
        what, _, sub = what.strip().partition("/")
        resource, _, group = what.partition(".")
        if not verbs or not resource:
            raise ValueError(f"a rule is 'VERBS RESOURCE[.GROUP][/SUB]', not {text!r}")
        return cls(frozenset(verbs.split(",")), resource, group, sub)

    def allows(self, verb: str, group: str, resource: str, subresource: str) -> bool:
        return (
            ("*" in self.verbs or verb in self.verbs)
            and (self.resource == "*" or (self.resource == resource and self.group == group))
            and (self.subresource == subresource or self.subresource == "*")
        )


class Rbac:
    """The rules per namespace; a namespace without rules allows everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, tuple[Rule, ...]] = {}

    def restrict(self, namespace: str, rules: Iterable[str]) -> None:
        """From now on, only ``rules`` are allowed in ``namespace`` (``""``: the cluster scope)."""
        parsed = tuple(Rule.parse(r) for r in rules)
        with self._lock:
            self._rules[namespace] = parsed

    def allow_all(self, namespace: str) -> None:
        with self._lock:
            self._rules.pop(namespace, None)

    def allows(
        self, verb: str, group: str, resource: str, subresource: str = "", namespace: str = ""
    ) -> bool:
        with self._lock:
            rules = self._rules.get(namespace)
        if rules is None:
            return True
        return any(rule.allows(verb, group, resource, subresource) for rule in rules)

    def check(
        self, verb: str, group: str, resource: str, subresource: str, namespace: str, name: str
    ) -> None:
        """Raise the 403 an API server answers when the request is not allowed."""
        if self.allows(verb, group, resource, subresource, namespace):
            return
        # kubernetes/apiserver pkg/endpoints/handlers/responsewriters/errors.go (forbiddenMessage)
        # and apimachinery pkg/api/errors/errors.go NewForbidden: '<resource>[.group] ["name"] is
        # forbidden: User "u" cannot <verb> resource "<res[/sub]>" in API group "<g>" ...'
        full = f"{resource}/{subresource}" if subresource else resource
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        why = f'User "{USER}" cannot {verb} resource "{full}" in API group "{group}" {where}'
        qualified = f"{resource}.{group}" if group else resource
        named = f' "{name}"' if name else ""
        raise ApiError(
            403,
            "Forbidden",
            f"{qualified}{named} is forbidden: {why}",
            {"name": name, "group": group, "kind": resource}
            if name
            else {"group": group, "kind": resource},
        )

    def review(self, body: object) -> Obj:
        """The answer to a SelfSubjectAccessReview (kubernetes/api authorization/v1/types.go
        @v0.33.0:56-68 request, 247-263 status): the object back with ``status.allowed``."""
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise ApiError(400, "BadRequest", "the request body must be a SelfSubjectAccessReview")
        spec = body["spec"]
        resource_attrs = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        if (resource_attrs is None) == (non_resource is None):
            raise ApiError(
                422,
                "Invalid",
                'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: '
                'spec.resourceAttributes: Invalid value: "null": exactly one of '
                "nonResourceAttributes or resourceAttributes must be specified",
            )
        answer = copy.deepcopy(body)
        answer.setdefault("apiVersion", "authorization.k8s.io/v1")
        answer.setdefault("kind", "SelfSubjectAccessReview")
        answer.setdefault("metadata", {})
        if non_resource is not None:
            answer["status"] = {"allowed": True}  # /version, /healthz... are open here
            return answer
        attrs = {key: str(resource_attrs.get(key) or "") for key in _ATTRIBUTES}
        allowed = self.allows(
            attrs["verb"],
            attrs["group"],
            attrs["resource"],
            attrs["subresource"],
            attrs["namespace"],
        )
        # RBAC has no opinion when no rule matches: allowed false, no reason, not denied
        answer["status"] = {"allowed": allowed}
        return answer
