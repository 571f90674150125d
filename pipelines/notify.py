"""Failure hooks: a failed flow run leaves a failure artifact and calls a webhook.

Set ``LMOPS_NOTIFY_WEBHOOK`` to an HTTP(S) URL (Slack-compatible: the JSON body
has a ``text`` field) and every failed scheduled run posts to it, so a failure at
3 a.m. is seen. The artifact is always written, webhook or not.
"""

from __future__ import annotations

import json
import os
import urllib.request

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate


def failure_text(flow, flow_run, state) -> str:
    return (
        f"lmops flow '{flow.name}' run '{flow_run.name}' ({flow_run.id}) failed: "
        f"{state.message or state.name}"
    )


def notify_failure(flow, flow_run, state) -> None:
    """Prefect ``on_failure`` hook (also used for crashes)."""
    text = failure_text(flow, flow_run, state)
    params = json.dumps(flow_run.parameters, default=str)[:2000]
    markdown = (
        f"# Flow run failed\n\n**{flow.name}** / `{flow_run.name}`\n\n"
        f"```\n{state.message or state.name}\n```\n\nParameters: `{params}`\n"
    )
    try:
        with get_client(sync_client=True) as client:
            client.create_artifact(
                ArtifactCreate(
                    key="failure",
                    type="markdown",
                    data=markdown,
                    flow_run_id=flow_run.id,
                    description="Why this run failed",
                )
            )
    except Exception as e:  # the hook must never mask the original failure
        print(f"lmops: could not write the failure artifact: {e}")
    url = os.environ.get("LMOPS_NOTIFY_WEBHOOK")
    if url:
        body = json.dumps(
            {
                "text": text,
                "flow": flow.name,
                "flow_run_id": str(flow_run.id),
                "state": state.name,
                "message": state.message,
            }
        ).encode()
        req = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except OSError as e:
            print(f"lmops: webhook {url} failed: {e}")
