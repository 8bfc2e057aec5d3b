"""The venv: made when missing, rebuilt when broken, interrupted or of another Python, and
never deleted when the tool did not make it."""

from __future__ import annotations

from localai_provision.facts.model import Facts
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.site.model import HostSpec


def venv_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    venv = facts.venv

    def change(action: Action, before: str | None, after: str | None, reason: str) -> Change:
        return Change(spec.name, Kind.VENV, "", action, before, after, reason)

    wanted_python = facts.python.short_version if facts.python.found else None
    if venv.exists and not venv.owned and not venv.empty:
        # Never delete what the tool did not make: a venv of someone else's where ours goes.
        return [
            change(
                Action.FAIL,
                "not made by localai",
                venv.path,
                f"{venv.path} exists but was not made by localai-provision (it has no "
                ".localai-owned marker): refused, apply would have to delete it",
            )
        ]
    if not venv.exists:
        return [change(Action.CREATE, None, venv.path, "there is no venv yet")]
    if not venv.python_exists:
        return [
            change(
                Action.UPDATE,
                "broken",
                venv.path,
                "the venv's Python is gone (deleted or upgraded under it); the venv is rebuilt",
            )
        ]
    if not venv.complete:
        return [
            change(
                Action.UPDATE,
                "incomplete",
                venv.path,
                "the venv is incomplete (an earlier build was interrupted); it is rebuilt",
            )
        ]
    if (
        wanted_python
        and venv.python_version
        and not _same_minor(venv.python_version, wanted_python)
    ):
        return [
            change(
                Action.UPDATE,
                f"Python {venv.python_version}",
                f"Python {wanted_python}",
                f"the venv was made with Python {venv.python_version}, `{spec.python}` is "
                f"{wanted_python}; the venv is rebuilt",
            )
        ]
    return []


def _same_minor(a: str, b: str) -> bool:
    return a.split(".")[:2] == b.split(".")[:2]
