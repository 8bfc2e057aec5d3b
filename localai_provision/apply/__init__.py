"""apply: carry out a host's plan, and only its plan, then prove the result.

Per host: gather facts, plan, and if anything is to be done: take the host's lock, run each
step the plan asks for (venv, packages, server configuration, models, service), verify the
server and prewarm its models, then gather facts again and plan again. A host is converged
only when that second plan is empty.

One room per concern:

    context.py       HostContext (connector, spec, facts, layout, log), options, statuses
    hostlock.py      the host's lock, and the leftovers only its holder clears
    install.py       venv, uv, packages, pushed wheels, the shim, the server's configuration
    sources.py       controller-side model sourcing (touches no host): folders, the hub
    host_models.py   the host's model cache: copy from the controller, or download
    verification.py  verify and prewarm; is the port held
    benchstep.py     verify.bench: measure the server after a change (bench.py), for state
    pull_timer.py    the pull timer (launchd or cron)
    state.py         prefix/state.json
    refuse.py        what stops a host before anything is touched
    run.py           the orchestration: execute, apply_job_factory, apply_hosts
"""

from localai_provision.apply.context import (
    CHANGED,
    FAILED,
    INSTALL_TIMEOUT_S,
    OK,
    SKIPPED,
    UNREACHABLE,
    VENV_TIMEOUT_S,
    ApplyOptions,
    HostContext,
    StepLog,
)
from localai_provision.apply.host_models import copy_model, download_model
from localai_provision.apply.hostlock import (
    EXIT_LOCK_HELD,
    acquire_lock,
    clear_leftovers,
    release_lock,
)
from localai_provision.apply.install import (
    EXIT_NOT_OURS,
    build_venv,
    ensure_uv,
    install_packages,
    install_shim,
    push_wheels,
    write_server_config,
)
from localai_provision.apply.pull_timer import converge_pull_timer
from localai_provision.apply.refuse import refuse_unusable
from localai_provision.apply.run import apply_hosts, apply_job_factory, execute
from localai_provision.apply.sources import (
    ModelFile,
    ModelSource,
    escaping_links,
    folder_source,
    hub_source,
    manifest_commit,
    model_manifest,
    model_source,
    refuse_escaping_links,
)
from localai_provision.apply.state import site_hash, write_state
from localai_provision.apply.verification import port_in_use, verify
from localai_provision.layout import COMPLETE_MARKER, OWNED_MARKER

__all__ = [
    "CHANGED",
    "COMPLETE_MARKER",
    "EXIT_LOCK_HELD",
    "EXIT_NOT_OURS",
    "FAILED",
    "INSTALL_TIMEOUT_S",
    "OK",
    "OWNED_MARKER",
    "SKIPPED",
    "UNREACHABLE",
    "VENV_TIMEOUT_S",
    "ApplyOptions",
    "HostContext",
    "ModelFile",
    "ModelSource",
    "StepLog",
    "acquire_lock",
    "apply_hosts",
    "apply_job_factory",
    "build_venv",
    "clear_leftovers",
    "converge_pull_timer",
    "copy_model",
    "download_model",
    "ensure_uv",
    "escaping_links",
    "execute",
    "folder_source",
    "hub_source",
    "install_packages",
    "install_shim",
    "manifest_commit",
    "model_manifest",
    "model_source",
    "port_in_use",
    "push_wheels",
    "refuse_escaping_links",
    "refuse_unusable",
    "release_lock",
    "site_hash",
    "verify",
    "write_server_config",
    "write_state",
]
