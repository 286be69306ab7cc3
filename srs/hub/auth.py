"""Signing in to JupyterHub against the registry (safe people): ``SRSAuthenticator``.

A person signs in with their registry password (``check_sign_in``: Argon2id, lock-out after the
access policy's ``failed_login_limit`` consecutive failures, audited) after acknowledging the
system-use notice, and only if they may work in at least one active project now (accredited,
trained, unlocked, a member of a running project: the same rule ``srs.governance.access.decide`` applies to
``srs.session()``). ``active_projects`` is that rule for the hub; the spawner uses it too.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import html
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jupyterhub.auth import Authenticator
from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado import web
from traitlets import HasTraits, List, Unicode, default

from srs.governance.access import decide
from srs.governance.audit import record_event
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet, load_policies
from srs.governance.registry import Registry, open_registry
from srs.governance.registry.models import Researcher
from srs.governance.registry.sign_in import SignInRefused, check_sign_in
from srs.hub.config import HubConfigError

SERVICE = "jupyterhub"
# The action whose rule says "may work in this project now"; issuing a session token and
# ``srs.session()`` check the same one, so a project offered at sign-in can be started.
WORK_ACTION = "output.create"
NOTICE_FILE = "system_use_notice.txt"
ACKNOWLEDGE_FIELD = "acknowledge_notice"
DEFAULT_NOTICE = """\
This is a secure research environment holding de-identified, linked criminal-justice data. It is
for accredited researchers working on approved projects only, and only for the purposes of those
projects.

Everything you do here is recorded: sign-ins, every dataset read and every output requested are
written to an audit log that administrators and data owners review.

You must not attempt to identify any person or household, link these data to other sources, copy
data out of the environment or share your account. Results leave only as outputs that pass
statistical disclosure control and an independent check.

Misuse may lead to your access being withdrawn, to sanctions by your organisation and to
prosecution (Digital Economy Act 2017 s.64, Data Protection Act 2018 s.170)."""


@dataclass(frozen=True)
class HubStanding:
    """Whether a person may use the hub now: their active projects, roles, or why not."""

    username: str
    projects: tuple[str, ...]
    roles: tuple[str, ...]
    refusal: str | None

    @property
    def allowed(self) -> bool:
        """True when the person may sign in."""
        return self.refusal is None


def active_projects(
    db: Session,
    *,
    username: str,
    policies: PolicySet,
    service_roles: frozenset[str] = frozenset(),
    today: date | None = None,
) -> HubStanding:
    """Who ``username`` is to the hub: the projects they may work in now, or why they may not sign in.

    A person may sign in when ``srs.governance.access.decide`` allows them ``output.create`` in at least one
    project they belong to (which needs an unlocked account, a researcher role, current
    accreditation and training and a running project), or when they hold one of
    ``service_roles`` (a checker reaches the output-checking service through the hub; with no
    project they get no notebook server). Pure reads: the caller audits the outcome.
    """
    person = db.execute(
        select(Researcher).where(Researcher.username == username)
    ).scalar_one_or_none()
    if person is None:
        return HubStanding(username, (), (), f"no account named {username!r} is registered")
    roles = tuple(sorted(person.roles))
    if person.locked:
        return HubStanding(
            username,
            (),
            roles,
            f"account {username!r} is locked ({person.locked_reason or 'no reason given'})",
        )
    allowed: list[str] = []
    reasons: list[str] = []
    for membership in person.memberships:
        decision = decide(
            person=person,
            username=username,
            action=WORK_ACTION,
            policies=policies,
            today=today or date.today(),
            project=membership.project,
            project_code=membership.project.code,
        )
        if decision.allowed:
            allowed.append(membership.project.code)
        else:
            reasons.append(decision.reason)
    if allowed or service_roles.intersection(roles):
        return HubStanding(username, tuple(sorted(allowed)), roles, None)
    # The first refusal names what to fix (lapsed accreditation, ended project); with no
    # membership at all there is nothing to fix but the membership itself.
    refusal = reasons[0] if reasons else f"{username} is not a member of any active project"
    return HubStanding(username, (), roles, refusal)


class HubDeployment(HasTraits):
    """The deployment a hub component works on: its home folder and policy folder, from config.

    Opens the registry and loads the policies once, on first use; both are safe to use from
    worker threads (each call takes its own database session).
    """

    home = Unicode(
        help="""The deployment folder (``srs init``): its registry, vault and key file. The
        researchers' servers never see it.""",
    ).tag(config=True)

    policy_dir = Unicode(
        help="""The policy folder (``policies/`` or a site's own). Empty: ``SRS_POLICY_DIR``, else
        the shipped policies.""",
    ).tag(config=True)

    @property
    def deployment(self) -> Deployment:
        """The deployment named by ``home`` (its database URL may come from ``SRS_DATABASE_URL``)."""
        if not self.home:
            raise HubConfigError(
                f"{type(self).__name__}.home is not set; write the hub's config with `srs hub config`"
            )
        return Deployment.at(self.home)

    @property
    def registry(self) -> Registry:
        """The deployment's registry, opened once per hub process and shared by every server."""
        return _registry_at(self.deployment.database_url)

    @property
    def policies(self) -> PolicySet:
        """The deployment's policies, loaded once per hub process (restart the hub to change them)."""
        return _policies_in(self.policy_dir)


@functools.cache
def _registry_at(database_url: str) -> Registry:
    return open_registry(database_url)


@functools.cache
def _policies_in(policy_dir: str) -> PolicySet:
    return load_policies(policy_dir or None)


def _refused(message: str) -> web.HTTPError:
    # "%s" keeps a "%" in the message from being read as a format directive by tornado.
    return web.HTTPError(403, "%s", message)


class SRSAuthenticator(HubDeployment, Authenticator):
    """Sign in with a registry account, after acknowledging the system-use notice.

    Configure in ``jupyterhub_config.py`` (``srs hub config`` writes this)::

        c.JupyterHub.authenticator_class = "srs.hub.auth.SRSAuthenticator"
        c.SRSAuthenticator.home = "/srv/srs"
        c.SRSAuthenticator.policy_dir = "/srv/srs-policies"

    Refusals are shown on the login page and audited; a wrong password counts towards the
    lock-out, a missing acknowledgement does not (no password is checked without it).
    """

    system_use_notice = Unicode(
        DEFAULT_NOTICE,
        help=f"""The system-use notice shown above the sign-in button, used when the policy
        folder holds no ``{NOTICE_FILE}``. Paragraphs are separated by blank lines.""",
    ).tag(config=True)

    service_roles = List(
        Unicode(),
        default_value=["checker"],
        help="""Registry roles that may sign in without an active project, to reach hub
        services (the output checkers' UI). They are refused a notebook server.""",
    ).tag(config=True)

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # The registry is the allow list: ``authenticate`` already refused anyone who may not
        # use the hub, so JupyterHub's own allowed_users list would only be a second copy.
        return True

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        # Registry roles become hub groups, so hub roles (access to the checker service) can
        # be granted to the "checker" group and follow the registry.
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self) -> bool:
        # A server starts only if the person may still use the hub (lock, lapse, project end).
        return True

    def notice_text(self) -> tuple[str, str]:
        """The notice's text and where it came from (the policy file or this setting)."""
        folder = Path(self.policy_dir) if self.policy_dir else self.policies.source_dir
        path = folder / NOTICE_FILE
        if path.is_file():
            text, source = path.read_text(encoding="utf-8").strip(), str(path)
        else:
            text, source = (
                self.system_use_notice.strip(),
                f"{type(self).__name__}.system_use_notice",
            )
        if not text:
            raise HubConfigError(f"the system-use notice ({source}) is empty; a site must show one")
        return text, source

    def get_custom_html(self, base_url: str) -> str:
        """The sign-in form: username, password, the notice and its acknowledgement box.

        JupyterHub renders this as a Jinja template with the login context (``xsrf``,
        ``login_error``, ``username``, ``authenticator_login_url``); the notice text is escaped
        here, braces included, so nothing in it is read as template syntax.
        """
        text, _ = self.notice_text()
        paragraphs = "\n".join(
            "<p>"
            + html.escape(" ".join(part.split())).replace("{", "&#123;").replace("}", "&#125;")
            + "</p>"
            for part in text.split("\n\n")
            if part.strip()
        )
        return LOGIN_FORM.replace("__NOTICE__", paragraphs)

    async def authenticate(self, handler: web.RequestHandler, data: dict) -> dict | None:
        """The signed-in person as ``{"name", "groups"}``, or ``HTTPError(403)`` saying why not."""
        username = str(data.get("username") or "").strip()
        password = str(data.get("password") or "")
        acknowledged = str(data.get(ACKNOWLEDGE_FIELD) or "").lower() in {"yes", "on", "true"}
        # Argon2 takes tens of milliseconds and the registry may be remote: off the event loop.
        return await asyncio.to_thread(self._sign_in, username, password, acknowledged)

    def _sign_in(self, username: str, password: str, acknowledged: bool) -> dict:
        notice, source = self.notice_text()
        with self.registry.sessions() as db:
            if not acknowledged:
                record_event(
                    db,
                    actor=username[:64] or "(blank)",
                    action="hub.notice.acknowledge",
                    target=SERVICE,
                    outcome="deny",
                    reason="sign-in attempted without acknowledging the system-use notice",
                )
                db.commit()
                raise _refused("acknowledge the system-use notice to sign in")
            try:
                check_sign_in(
                    db,
                    username=username,
                    password=password,
                    policies=self.policies,
                    service=SERVICE,
                )
            except SignInRefused as exc:
                raise _refused(str(exc)) from None
            # The acknowledgement is recorded once the password proved who gave it.
            record_event(
                db,
                actor=username,
                action="hub.notice.acknowledge",
                target=SERVICE,
                outcome="ok",
                reason="acknowledged the system-use notice at sign-in",
                details={
                    "notice_sha256": hashlib.sha256(notice.encode("utf-8")).hexdigest(),
                    "notice_source": source,
                },
            )
            standing = active_projects(
                db,
                username=username,
                policies=self.policies,
                service_roles=frozenset(self.service_roles),
            )
            record_event(
                db,
                actor=username,
                action="hub.login",
                target=SERVICE,
                outcome="allow" if standing.allowed else "deny",
                reason=standing.refusal
                or "may work in " + (", ".join(standing.projects) or "no project (service role)"),
                details={"projects": list(standing.projects)},
            )
            db.commit()
        if not standing.allowed:
            raise _refused(f"sign-in refused: {standing.refusal}; ask an administrator")
        return {"name": username, "groups": list(standing.roles), "auth_state": None}

    async def refresh_user(self, user, handler=None) -> bool:
        """False (sign in again) once the person may no longer use the hub; checked before
        every spawn and every ``auth_refresh_age`` seconds."""
        standing = await asyncio.to_thread(self.standing, user.name)
        if not standing.allowed:
            self.log.warning("Ending %s's hub session: %s", user.name, standing.refusal)
        return standing.allowed

    def standing(self, username: str) -> HubStanding:
        """``active_projects`` for ``username`` now, with this authenticator's service roles."""
        with self.registry.sessions() as db:
            return active_projects(
                db,
                username=username,
                policies=self.policies,
                service_roles=frozenset(self.service_roles),
            )


# The sign-in form, a Jinja template JupyterHub renders with the login page's context.
LOGIN_FORM = """\
<form action="{{ authenticator_login_url|e }}" method="post" role="form" id="srs-login">
  <div class="auth-form-header"><h1>Sign in to the secure research environment</h1></div>
  <div class="auth-form-body m-auto">
    {% if login_error %}<p class="login_error alert alert-danger">{{ login_error|e }}</p>{% endif %}
    <input type="hidden" name="_xsrf" value="{{ xsrf|e }}" />
    <label for="username_input">Username:</label>
    <input id="username_input" type="text" autocapitalize="off" autocorrect="off"
           autocomplete="username" class="form-control" name="username"
           value="{{ (username or '')|e }}" autofocus="autofocus" />
    <label for="password_input">Password:</label>
    <input id="password_input" type="password" class="form-control"
           autocomplete="current-password" name="password" />
    <section id="system-use-notice" class="alert alert-warning" style="margin-top: 1em">
      <h2 style="font-size: 1.2em">System-use notice</h2>
      __NOTICE__
      <label>
        <input type="checkbox" id="acknowledge_notice" name="acknowledge_notice" value="yes"
               required />
        I acknowledge the system-use notice
      </label>
    </section>
    <input id="login_submit" type="submit" class="btn btn-jupyter form-control" value="Sign in" />
  </div>
</form>
"""
