"""The message commands: ``digest``, a policy's digest on demand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..notify import AppriseSender, SendError, channel_url
from ..policy import Policy
from .app import LogFormatOpt, NowOpt, StateOpt, app, err, out, parse_now, read_policy, setup_logs


def known_channel(policy: Policy, channel: str) -> str:
    """``--channel``: one of the policy's channels, else a ``UserError`` naming them."""
    known = sorted({*policy.notify.channels, *(d.channel for d in policy.digests)})
    if channel in known:
        return channel
    if not known:
        raise UserError(f"--channel {channel!r}: the policy {policy.name!r} defines no channel "
                        "(add one under notify.channels)")
    raise UserError(f"--channel {channel!r} is not a channel of the policy {policy.name!r}: "
                    f"use one of {', '.join(known)}")


@app.command()
def digest(
    policy_path: Annotated[Path, typer.Argument(metavar="POLICY", help="The policy file (with a tracker section).")],
    channel: Annotated[str, typer.Option("--channel", "-c", help="The channel (of notify.channels) it is for.",
                                         show_default=False)],
    now: NowOpt = None,
    state: StateOpt = None,
    send: Annotated[bool, typer.Option("--send", help="Also send it to the channel (through Apprise).")] = False,
    log_format: LogFormatOpt = "plain",
) -> None:
    """Show a digest now: the open issues at risk and breached, and counts.

    Fetches and evaluates the issues as `sla-sync plan` does, writes nothing,
    and prints the digest the channel would get. Its day and due times are
    in the calendar of the channel's first `digest:` entry, else UTC. With
    --send it is also sent; an on-demand digest does not move the schedule.
    Exits 2 if the channel's URL is not set, 1 if sending failed.
    """
    from ..digest import digest_message  # the state store and the pass: imported by the command that needs them
    from ..runner import one_pass
    from ..state import Store, default_location

    setup_logs(log_format)
    policy = read_policy(policy_path)
    name = known_channel(policy, channel)
    at = parse_now(now)
    if send:  # a channel whose URL is not set is a settings error (exit 2), found before any request
        try:
            channel_url(policy.notify, name, os.environ)
        except UserError as exc:
            raise UserError(f"channel {name}: {exc}") from None
    result = one_pass(policy, Store(state or default_location()), at, apply=False, env=os.environ)
    calendar = next((d.calendar for d in policy.digests if d.channel == name), None)
    message = digest_message(policy, result.outcomes, at, name, calendar)
    out(f"{message.title}\n\n{message.body}")
    for problem in result.errors:
        err(f"sla-sync: {problem}")
    if send:
        try:
            AppriseSender(policy.notify, os.environ).send(message)
        except SendError as exc:
            err(f"sla-sync: {exc}")
            raise typer.Exit(1) from None
        err(f"digest sent to {name}")
