"""Users and groups in the store (SCIM's view of them), and the groups a principal belongs to."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from modelgate.auth.tokens import now_ms
from modelgate.store.tables import GroupMember
from modelgate.store.tables import Principal as PrincipalRow

ADMINS_GROUP = "admins"


def groups_of(s: Session, principal_id: int) -> frozenset[str]:
    rows = s.scalars(
        select(PrincipalRow.name)
        .join(GroupMember, GroupMember.group_id == PrincipalRow.id)
        .where(GroupMember.member_id == principal_id, PrincipalRow.kind == "group")
    )
    return frozenset(rows)


def members_of(s: Session, group_id: int) -> list[PrincipalRow]:
    return list(
        s.scalars(
            select(PrincipalRow)
            .join(GroupMember, GroupMember.member_id == PrincipalRow.id)
            .where(GroupMember.group_id == group_id)
            .order_by(PrincipalRow.id)
        )
    )


def group_rows_of(s: Session, principal_id: int) -> list[PrincipalRow]:
    return list(
        s.scalars(
            select(PrincipalRow)
            .join(GroupMember, GroupMember.group_id == PrincipalRow.id)
            .where(GroupMember.member_id == principal_id)
            .order_by(PrincipalRow.id)
        )
    )


def create_principal(s: Session, kind: str, name: str, display_name: str | None = None) -> PrincipalRow:
    row = PrincipalRow(
        kind=kind, name=name, display_name=display_name, is_admin=False, active=True, created_ms=now_ms()
    )
    s.add(row)
    s.flush()
    return row


def add_members(s: Session, group_id: int, member_ids: list[int]) -> None:
    existing = {m.id for m in members_of(s, group_id)}
    for mid in member_ids:
        if mid not in existing and mid != group_id:
            s.add(GroupMember(group_id=group_id, member_id=mid))
            existing.add(mid)
    s.flush()


def remove_members(s: Session, group_id: int, member_ids: list[int]) -> None:
    s.execute(delete(GroupMember).where(GroupMember.group_id == group_id, GroupMember.member_id.in_(member_ids)))


def set_members(s: Session, group_id: int, member_ids: list[int]) -> None:
    s.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
    s.flush()
    add_members(s, group_id, member_ids)
