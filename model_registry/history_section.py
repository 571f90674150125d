"""The "Promotion history" section of a version's description: its latest decisions.

Rewritten after each gate, approval, rollback and audit revert of the version.
"""

from __future__ import annotations

from mlflow import MlflowClient

from model_registry import history, history_read

HISTORY_HEADING = "## Promotion history"
DESCRIPTION_LIMIT = 5000  # MLflow's column for a version description
HISTORY_ROWS = 8


def _v(version: str) -> str:
    return f"v{version}" if version else "none"


def refresh_history_section(name: str, version: str) -> None:
    """Rewrite the description's history: who, when, from -> to and why, one line each.

    The version page shows the description, not the audit experiment, so a reviewer
    reads the latest decisions there; the full history is ``lmops history``.
    """
    client = MlflowClient()
    mv = client.get_model_version(name, version)
    card = (mv.description or "").split(f"\n{HISTORY_HEADING}")[0]
    card = card.split("\n\n_Card shortened for the history")[0].rstrip()
    evs = sorted(
        history_read.events(name, version)
        + history_read.events(name, version, history.APPROVALS_EXPERIMENT),
        key=lambda e: e.time,
    )[-HISTORY_ROWS:]
    rows = []
    for e in evs:
        failed = [r.removeprefix("FAIL ") for r in e.reasons if r.startswith("FAIL")]
        passed_rows = sum(r.startswith("ok ") for r in e.reasons)
        why = (
            "; ".join(failed) or e.comment or (f"all {passed_rows} rows passed" if e.passed else "")
        )
        what = {"gate": "gate passed" if e.passed else "gate REFUSED"}.get(e.event, e.event)
        move = f"@{e.alias}: {_v(e.from_version)} → {_v(e.to_version)}"
        who = e.actor + ("" if e.verified else " (unverified)")
        rows.append(f"- **{e.when}** {who}: {what}, {move}. {why[:200]}".replace("\n", " "))
    section = f"\n\n{HISTORY_HEADING}\n\n" + "\n".join(rows) + "\n\nFull history: `lmops history`."
    room = DESCRIPTION_LIMIT - len(section)
    if len(card) > room:  # keep the history: drop the card's last sections, whole
        head, *parts = card.split("\n## ")
        note = "\n\n_Card shortened for the history: see the run artifact `model_card.md`._"
        while parts and len("\n## ".join([head, *parts]) + note) > room:
            parts.pop()
        card = "\n## ".join([head, *parts])[: room - len(note)] + note
    client.update_model_version(name, version, description=card + section)
