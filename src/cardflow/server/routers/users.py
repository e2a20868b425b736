"""/api/v1/users: users, their roles and invitations (owners only)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from cardflow.access.roles import Role
from cardflow.access.users import MAX_EMAIL_CHARS, MAX_NAME_CHARS, InviteView, UserView
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import CardflowDep, OwnerDep, ViewerDep
from cardflow.server.schemas import errors

router = APIRouter(
    prefix="/api/v1/users", tags=["users"], route_class=JsonRoute, responses=errors(401, 403, 422)
)


class Me(BaseModel):
    """Who the caller is, and the role that applies to their requests."""

    id: str
    name: str
    role: Role
    token: str | None = Field(description="The API token's name; null from the web app.")


class InviteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, max_length=MAX_NAME_CHARS, description="The user's name (default: email)."
    )
    email: str | None = Field(default=None, max_length=MAX_EMAIL_CHARS)
    role: Role = Field(default=Role.viewer)


class InviteCreated(InviteView):
    url: str = Field(
        description="The one-time link to give the invited person (shown only now): opening "
        "it creates the user and logs them in."
    )


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


@router.get("/me")
def me(caller: ViewerDep) -> Me:
    return Me(id=caller.user_id, name=caller.user_name, role=caller.role, token=caller.token_name)


@router.get("")
def list_users(cf: CardflowDep, _caller: OwnerDep) -> list[UserView]:
    return cf.users.list()


@router.get("/invites")
def list_invites(cf: CardflowDep, _caller: OwnerDep) -> list[InviteView]:
    """Pending invitations (not used, not expired), newest first."""
    return cf.users.invites()


@router.post("/invites", status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_invite(body: InviteCreate, cf: CardflowDep, _caller: OwnerDep) -> InviteCreated:
    """Invite someone: a one-time link (7 days) that creates their user with this role."""
    view, token = cf.users.invite(name=body.name, email=body.email, role=body.role)
    return InviteCreated(**view.model_dump(), url=invite_url(cf.settings.public_url, token))


@router.delete(
    "/invites/{invite_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404)
)
def cancel_invite(invite_id: str, cf: CardflowDep, _caller: OwnerDep) -> Response:
    cf.users.cancel_invite(invite_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{ref}", responses=errors(404))
def get_user(ref: str, cf: CardflowDep, _caller: OwnerDep) -> UserView:
    return cf.users.get(ref)


@router.patch("/{ref}", responses=errors(404, 409))
def set_role(ref: str, body: RoleChange, cf: CardflowDep, _caller: OwnerDep) -> UserView:
    """Give a user another role (their API tokens follow: none exceeds it). The last owner
    stays an owner."""
    return cf.users.set_role(ref, body.role)


@router.delete("/{ref}", responses=errors(404, 409))
def remove_user(ref: str, cf: CardflowDep, _caller: OwnerDep) -> UserView:
    """Remove a user: their sessions end and their API tokens are revoked. Not the last
    owner."""
    return cf.users.remove(ref)


def invite_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/login?token={token}"
