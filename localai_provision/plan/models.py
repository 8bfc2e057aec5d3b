"""Models in the host's cache: each one the site names, complete at its revision."""

from __future__ import annotations

from localai_provision.facts.model import Facts
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.site.model import HostSpec


def model_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """A model missing or incomplete is fetched (downloaded, or copied from its `source`)."""
    return [
        Change(
            spec.name,
            Kind.MODEL,
            model.id,
            Action.CREATE if not model.present else Action.UPDATE,
            model.problem,
            model.revision,
            f"{model.id}@{model.revision}: {model.problem}; it will be "
            + (f"copied from {model_spec.source}" if model_spec.source else "downloaded"),
        )
        for model_spec, model in zip(spec.models, facts.models, strict=True)
        if not model.complete
    ]
