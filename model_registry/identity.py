"""Who is acting: the identity the tracking server authenticated, or the local user.

Against ``mlflow server --app-name basic-auth`` the credentials in
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` are checked by asking the
server for that user (``/api/2.0/mlflow/users/get``), which it answers only for a
caller whose password it accepted. Embedded (SQLite, no server) there is nobody to
check against: ``MLFLOW_TRACKING_USERNAME`` or else the OS user is recorded, marked
unverified.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

import mlflow

from lmops.errors import LmopsError

# The identity that alone may move @production (a service account on a server).
PROMOTER_ENV = "LMOPS_PROMOTION_IDENTITY"


@dataclass(frozen=True)
class Identity:
    name: str
    verified: bool  # True when the tracking server authenticated these credentials
    source: str

    def label(self) -> str:
        return self.name if self.verified else f"{self.name} (unverified: {self.source})"


def _server_user(uri: str, user: str) -> Identity:
    import requests

    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    try:
        r = requests.get(
            f"{uri.rstrip('/')}/api/2.0/mlflow/users/get",
            params={"username": user},
            auth=(user, password),
            timeout=10,
        )
    except requests.RequestException as e:
        raise LmopsError(f"cannot reach {uri} to check who you are: {e}") from None
    if r.status_code in (401, 403):
        raise LmopsError(
            f"the tracking server {uri} refused the credentials of '{user}'; check "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if r.status_code == 404:  # a server without the basic-auth app
        return Identity(user, False, "server without authentication")
    if not r.ok:
        raise LmopsError(f"the tracking server {uri} answered {r.status_code} for users/get")
    return Identity(user, True, "mlflow basic-auth")


def _anonymous(uri: str) -> Identity:
    """No credentials given: a server with authentication must say so clearly."""
    import requests

    try:
        r = requests.get(f"{uri.rstrip('/')}/api/2.0/mlflow/users/current", timeout=10)
    except requests.RequestException as e:
        raise LmopsError(f"cannot reach {uri}: {e}") from None
    if r.status_code == 401:
        raise LmopsError(
            f"the tracking server {uri} requires a login: set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD"
        )
    return Identity(getpass.getuser(), False, "server without authentication")


def current_identity() -> Identity:
    uri = mlflow.get_tracking_uri()
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if uri.startswith(("http://", "https://")):
        return _server_user(uri, user) if user else _anonymous(uri)
    # Embedded: a name can be given the MLflow way, but nothing checks it.
    return Identity(user or getpass.getuser(), False, "local, no authentication")


def promotion_identity() -> str | None:
    """The configured promotion identity, or None (embedded: anyone may promote)."""
    return os.environ.get(PROMOTER_ENV) or None
