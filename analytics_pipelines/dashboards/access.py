"""Who may do what with a dashboard (and so with its widgets). Decisions (docs/dashboards.md):

- A dashboard belongs to one venue of one tenant; another tenant's is not found (404) and another venue's is
  forbidden (403) -- checked before these rules (api/writes.check_owner).
- Inside the venue a dashboard is private to its creator until shared: a user it is not shared with does not
  see it (404, like a missing one: its name and widgets do not leak). The venue's default dashboard is
  everyone's in the venue. An admin (role admin or analytics.admin) sees and manages every dashboard of the
  tenant.
- view: read the dashboard, its widgets and their data, export them, clone it.
- edit: change the dashboard and its widgets, and share it -- the creator or a user it is shared with for
  edit, holding analytics.write; the default dashboard: any analytics.write holder of the venue.
- delete: the creator (with analytics.write) or an admin; the default dashboard an admin only (the next
  GET /v1/dashboard builds it again from the template)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SYSTEM_OWNER = "system:default"


@dataclass(frozen=True)
class Access:
    view: bool
    edit: bool
    delete: bool
    share: bool
    via: str  # admin | owner | share:view | share:edit | default | none

    def as_dict(self) -> dict:
        return asdict(self)


NONE = Access(False, False, False, False, "none")


def access_of(
    *, user: str, is_admin: bool, can_write: bool, created_by: str, is_default: bool, share: str | None
) -> Access:
    """The caller's access to one dashboard of its venue (`share`: its share, view | edit | None)."""
    if is_admin:
        return Access(True, True, True, True, "admin")
    if created_by == user:
        return Access(True, can_write, can_write, can_write, "owner")
    if share == "edit":
        return Access(True, can_write, False, can_write, "share:edit")
    if is_default:
        return Access(True, can_write, False, can_write, "default")
    if share == "view":
        return Access(True, False, False, False, "share:view")
    return NONE
