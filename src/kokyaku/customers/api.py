"""REST routes for customers, companies and custom-field definitions."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from kokyaku.audit import service as audit
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.customers import service
from kokyaku.customers.models import COMPANY, PERSON
from kokyaku.customers.schemas import (
    CustomerCreate,
    CustomerOut,
    CustomerPage,
    CustomerUpdate,
    CustomFieldIn,
    CustomFieldOut,
)
from kokyaku.deps import DB, actor, api_permission
from kokyaku.kit.ids import PathId, QueryId

router = APIRouter(prefix="/api/v1", tags=["customers"])
Reader = Annotated[User, Depends(api_permission(Perm.CUSTOMERS_READ))]
Writer = Annotated[User, Depends(api_permission(Perm.CUSTOMERS_WRITE))]
Deleter = Annotated[User, Depends(api_permission(Perm.CUSTOMERS_DELETE))]
FieldAdmin = Annotated[User, Depends(api_permission(Perm.FIELDS_MANAGE))]


class ListParams:
    def __init__(
        self,
        q: Annotated[str | None, Query(max_length=100, description="name, kana, email, phone or id")] = None,
        kind: Literal["person", "company"] | None = None,
        prefecture: Annotated[str | None, Query(max_length=10)] = None,
        owner_id: QueryId = None,
        company_id: QueryId = None,
        gender: Literal["female", "male", "other", "unknown"] | None = None,
        tag: Annotated[str | None, Query(max_length=50)] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> None:
        self.filters = service.CustomerFilters(
            kind=kind,
            prefecture=prefecture,
            owner_id=owner_id,
            company_id=company_id,
            gender=gender,
            tag=tag,
            q=q,
        )
        self.cursor = cursor
        self.limit = limit


def _page(db: DB, params: ListParams, kind: str | None) -> CustomerPage:
    if kind:
        params.filters.kind = kind
    page = service.list_customers(db, params.filters, cursor=params.cursor, limit=params.limit)
    return CustomerPage(items=[service.to_out(db, c) for c in page.items], next_cursor=page.next_cursor)


def _routes(path: str, kind: str) -> None:
    """The same five routes for people (/customers) and companies (/companies)."""

    @router.get(f"/{path}", response_model=CustomerPage, name=f"list_{path}")
    def list_(db: DB, _user: Reader, params: Annotated[ListParams, Depends()]) -> CustomerPage:
        return _page(db, params, kind if kind == COMPANY else None)

    @router.post(f"/{path}", response_model=CustomerOut, status_code=201, name=f"create_{path}")
    def create(db: DB, user: Writer, body: CustomerCreate) -> CustomerOut:
        if kind == COMPANY:
            body = body.model_copy(update={"kind": COMPANY})
        customer = service.create_customer(db, actor=actor(user), data=body)
        return service.to_out(db, customer)

    @router.get(f"/{path}/{{customer_id}}", response_model=CustomerOut, name=f"get_{path}")
    def get(db: DB, _user: Reader, customer_id: PathId) -> CustomerOut:
        return service.to_out(
            db, service.get_customer(db, customer_id, kind=kind if kind == COMPANY else None)
        )

    @router.patch(f"/{path}/{{customer_id}}", response_model=CustomerOut, name=f"update_{path}")
    def update(db: DB, user: Writer, customer_id: PathId, body: CustomerUpdate) -> CustomerOut:
        customer = service.update_customer(
            db, actor=actor(user), customer_id=customer_id, data=body, kind=kind if kind == COMPANY else None
        )
        return service.to_out(db, customer)

    @router.delete(f"/{path}/{{customer_id}}", status_code=204, name=f"delete_{path}")
    def delete(db: DB, user: Deleter, customer_id: PathId) -> Response:
        service.delete_customer(
            db, actor=actor(user), customer_id=customer_id, kind=kind if kind == COMPANY else None
        )
        return Response(status_code=204)


_routes("customers", PERSON)
_routes("companies", COMPANY)


@router.get("/customers/{customer_id}/audit", tags=["audit"])
def customer_audit(
    db: DB, _user: Annotated[User, Depends(api_permission(Perm.AUDIT_READ))], customer_id: int
) -> list[dict[str, object]]:
    customer = service.get_customer(db, customer_id)
    rows = audit.history(db, entity_type=service.ENTITY[customer.kind], entity_id=customer.id)
    return [
        {"at": r.at.isoformat(), "actor": r.actor_label, "action": r.action, "changes": r.changes}
        for r in rows
    ]


@router.get("/custom-fields", response_model=list[CustomFieldOut], tags=["custom fields"])
def list_custom_fields(db: DB, _user: Reader) -> list[CustomFieldOut]:
    return [CustomFieldOut.model_validate(d) for d in service.custom_field_defs(db)]


@router.post("/custom-fields", response_model=CustomFieldOut, status_code=201, tags=["custom fields"])
def create_custom_field(db: DB, user: FieldAdmin, body: CustomFieldIn) -> CustomFieldOut:
    return CustomFieldOut.model_validate(service.create_custom_field(db, actor=actor(user), data=body))


@router.delete("/custom-fields/{field_id}", status_code=204, tags=["custom fields"])
def delete_custom_field(db: DB, user: FieldAdmin, field_id: PathId) -> Response:
    service.delete_custom_field(db, actor=actor(user), field_id=field_id)
    return Response(status_code=204)
