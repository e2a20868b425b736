"""``cardflow user``: list, invite, change the role of, and remove users (as the owner)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cardflow.access.roles import ROLE_NAMES
from cardflow.cli._common import (
    JsonOpt,
    cells,
    confirm_delete,
    console,
    err_console,
    fixed,
    open_cardflow,
    print_json,
    short_time,
    want_json,
)
from cardflow.cli.admin import link_base

user_app = typer.Typer(
    help="Users and their roles (owner, admin, builder, viewer). The CLI acts as the owner.",
    no_args_is_help=True,
)
ROLES = ", ".join(ROLE_NAMES)


@user_app.command("list")
def user_list(json_output: JsonOpt = False) -> None:
    """List users and their roles, then pending invitations.

    Example: cardflow user list
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        cf.users.owner()  # the first user is the owner
        users = cf.users.list()
        invites = cf.users.invites()
    if as_json:
        print_json(
            {
                "users": [u.model_dump(mode="json") for u in users],
                "invites": [i.model_dump(mode="json") for i in invites],
            }
        )
        return
    table = Table("NAME", "ROLE", "EMAIL", fixed("ID"), fixed("CREATED"))
    for user in users:
        table.add_row(
            *cells(user.name, user.role, user.email or "", user.id, short_time(user.created_at))
        )
    console().print(table)
    if invites:
        pending = Table("INVITED", "ROLE", "EMAIL", fixed("ID"), fixed("EXPIRES"))
        for invite in invites:
            pending.add_row(
                *cells(
                    invite.name,
                    invite.role,
                    invite.email or "",
                    invite.id,
                    short_time(invite.expires_at),
                )
            )
        console().print(pending)


@user_app.command("invite")
def user_invite(
    role: Annotated[str, typer.Option("--role", help=f"Their role: {ROLES}.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Their user name (default: the email).")
    ] = None,
    email: Annotated[str | None, typer.Option("--email", help="Their email address.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Invite someone: prints a one-time link (7 days) that creates their user and logs
    them in. The link is the only thing printed on stdout.

    Example: cardflow user invite --name alice --role builder
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view, token = cf.users.invite(name=name, email=email, role=role)
        url = f"{link_base(cf).rstrip('/')}/login?token={token}"
    if as_json:
        print_json({**view.model_dump(mode="json"), "url": url})
        return
    typer.echo(url)
    err_console().print(
        Text(
            f"Invitation for {view.name!r} ({view.role}); give them the link: it works once, "
            f"until {short_time(view.expires_at)}.",
            style="dim",
        ),
        soft_wrap=True,
    )


@user_app.command("set-role")
def user_set_role(
    user: Annotated[str, typer.Argument(help="The user's name or id.")],
    role: Annotated[str, typer.Argument(help=f"The new role: {ROLES}.")],
    json_output: JsonOpt = False,
) -> None:
    """Give a user another role; their API tokens follow (none exceeds it).

    Example: cardflow user set-role alice viewer
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        view = cf.users.set_role(user, role)
    if as_json:
        print_json(view)
    else:
        console().print(Text(f"{view.name!r} is now {view.role}."))


@user_app.command("remove")
def user_remove(
    user: Annotated[str, typer.Argument(help="The user's name or id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to confirm.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Remove a user: their sessions end and their API tokens are revoked.

    Example: cardflow user remove alice --yes
    """
    as_json = want_json(json_output)
    with open_cardflow(as_json) as cf:
        found = cf.users.get(user)
        confirm_delete("user", found.name, found.id, yes)
        view = cf.users.remove(found.id)
    if as_json:
        print_json(view)
    else:
        console().print(Text(f"Removed user {view.name!r}; their sessions and tokens are gone."))
