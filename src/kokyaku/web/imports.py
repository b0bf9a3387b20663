"""Import pages: upload a CSV, check the detected encoding and the proposed column mapping on a preview, run a
dry run or the import as a background job with live progress, and read the results with the invalid rows.
Also the export downloads behind the buttons of the customer and order lists."""

import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm, can
from kokyaku.commerce.models import ORDER_CHANNELS, ORDER_STATUSES
from kokyaku.commerce.service import OrderFilters
from kokyaku.customers.models import GENDERS
from kokyaku.customers.service import CustomerFilters
from kokyaku.deps import DB, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError
from kokyaku.i18n import gettext
from kokyaku.imports import export as exporting
from kokyaku.imports import mapping as mapping_
from kokyaku.imports import service
from kokyaku.imports.kinds import Context
from kokyaku.imports.models import KINDS, MODES, ImportRun
from kokyaku.imports.reader import CsvFile, FileTooLarge, ImportFileError
from kokyaku.imports.tasks import enqueue_run
from kokyaku.jobs.models import Job
from kokyaku.web.render import locale_of, render

router = APIRouter(include_in_schema=False)
Writer = Annotated[User, Depends(page_permission(Perm.CUSTOMERS_WRITE))]
Exporter = Annotated[User, Depends(page_permission(Perm.DATA_EXPORT))]
Csrf = Depends(check_csrf)
PREVIEW_ROWS = 20
KIND_LABELS = {"customers": "Customers", "companies": "Companies", "products": "Products", "orders": "Orders",
               "touchpoints": "Touchpoints"}  # fmt: skip
MODE_LABELS = {"dry_run": "Dry run (check only, write nothing)",
               "all_or_nothing": "All or nothing (any invalid row: nothing is imported)",
               "skip_invalid": "Skip invalid rows (import the valid ones)"}  # fmt: skip


def _upload_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir) / "uploads"


def _max_bytes(request: Request) -> int:
    return int(request.app.state.settings.import_max_upload_mb) * 1024 * 1024


def _context(request: Request) -> Context:
    s = request.app.state.settings
    return Context(timezone=s.timezone, currency=s.default_currency, source="csv")


def _run_of(db: Session, user: User, run_id: int) -> ImportRun:
    # Everyone sees their own imports; those who may see all jobs see every import.
    return service.get_run(db, run_id, user_id=None if can(user.role, Perm.JOBS_ALL) else user.id)


def _index(request: Request, db: Session, user: User, errors: dict[str, str], status: int = 200) -> Response:
    runs = service.list_runs(db, user_id=None if can(user.role, Perm.JOBS_ALL) else user.id)
    ctx = {"kinds": [(k, KIND_LABELS[k]) for k in KINDS], "runs": runs, "errors": errors,
           "kind_labels": KIND_LABELS, "max_mb": request.app.state.settings.import_max_upload_mb}  # fmt: skip
    return render(request, "imports/index.html", ctx, status)


@router.get("/imports", response_class=HTMLResponse)
def index(request: Request, db: DB, user: Writer) -> Response:
    return _index(request, db, user, {})


@router.post("/imports", response_class=HTMLResponse, dependencies=[Csrf])
async def upload(request: Request, db: DB, user: Writer) -> Response:
    locale = locale_of(request)
    limit = _max_bytes(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        message = gettext(locale, FileTooLarge.message, limit=limit // (1024 * 1024))
        return _index(request, db, user, {"file": message}, 413)
    form = await request.form(max_files=1, max_fields=10)
    try:
        return await _store_upload(request, db, user, form, locale, limit)
    finally:
        await form.close()  # the upload's spooled temporary file


async def _store_upload(
    request: Request, db: Session, user: User, form: FormData, locale: str, limit: int
) -> Response:
    """Save the uploaded CSV under data_dir, check it, and open an import run for its preview."""
    kind = str(form.get("kind") or "")
    upload_file = form.get("file")
    if kind not in KINDS:
        return _index(request, db, user, {"kind": gettext(locale, "Choose what the file contains.")}, 422)
    if upload_file is None or isinstance(upload_file, str) or not upload_file.filename:
        return _index(request, db, user, {"file": gettext(locale, "Choose a CSV file.")}, 422)
    folder = _upload_dir(request)
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(12)
    path = folder / f"{token}.csv"
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := await upload_file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(limit=limit // (1024 * 1024))
                out.write(chunk)
        csv_file = CsvFile(path, max_bytes=limit, name=upload_file.filename)
        csv_file.check_has_rows()
    except ImportFileError as exc:
        path.unlink(missing_ok=True)
        return _index(request, db, user, {"file": gettext(locale, exc.message, **exc.params)}, exc.status)
    columns = mapping_.propose(kind, csv_file.header, mapping_.custom_defs(db, kind))
    run = service.create_run(
        db, kind=kind, path=path, filename=Path(upload_file.filename).name, size=size, actor=actor(user),
        columns=columns, encoding=csv_file.encoding.label, locale=locale,
        errors_path=folder / f"{token}.errors.csv",
    )  # fmt: skip
    return RedirectResponse(f"/imports/{run.id}", status_code=303)


def _field_options(db: Session, kind: str, locale: str) -> list[tuple[str, str]]:
    options = [(s.key, gettext(locale, s.label)) for s in mapping_.field_specs(kind)]
    for d in mapping_.custom_defs(db, kind):
        options.append((f"{mapping_.CUSTOM_PREFIX}{d.key}", d.label_ja if locale == "ja" else d.label_en))
    return options


def _preview_context(
    request: Request, db: Session, run: ImportRun, columns: dict[str, str], errors: list[str]
) -> dict[str, Any]:
    locale = locale_of(request)
    try:
        csv_file = CsvFile(run.path, name=run.filename)
        header, rows = csv_file.header, csv_file.preview(PREVIEW_ROWS)
    except ImportFileError as exc:
        header, rows = [], []
        errors = [*errors, gettext(locale, exc.message, **exc.params)]
    return {
        "run": run, "header": header, "rows": rows, "columns": columns, "errors": errors,
        "options": _field_options(db, run.kind, locale), "saved": mapping_.saved_mappings(db, run.kind),
        "modes": [(m, MODE_LABELS[m]) for m in MODES], "kind_label": KIND_LABELS[run.kind],
        "unknown": mapping_.unknown_headers(columns),
    }  # fmt: skip


@router.get("/imports/{run_id}", response_class=HTMLResponse)
def detail(request: Request, db: DB, user: Writer, run_id: int) -> Response:
    run = _run_of(db, user, run_id)
    if run.status != "uploaded":
        return render(request, "imports/run.html", _run_context(request, db, run))
    columns = dict(run.columns)
    chosen = request.query_params.get("mapping")
    errors: list[str] = []
    if chosen:
        try:
            columns = mapping_.apply_saved(columns, mapping_.get_mapping(db, run.kind, chosen).columns)
        except KokyakuError as exc:
            errors.append(gettext(locale_of(request), exc.message, **exc.params))
    return render(request, "imports/preview.html", _preview_context(request, db, run, columns, errors))


def _posted_columns(form: Any, run: ImportRun) -> dict[str, str]:
    """The selects col-0, col-1, ... by the file's own header (its column positions)."""
    try:
        header = CsvFile(run.path, name=run.filename).header
    except ImportFileError:
        header = list(run.columns)
    return {h: str(form.get(f"col-{i}") or "") for i, h in enumerate(header) if h}


@router.post("/imports/{run_id}/mapping", response_class=HTMLResponse, dependencies=[Csrf])
async def save_mapping(request: Request, db: DB, user: Writer, run_id: int) -> Response:
    run = _run_of(db, user, run_id)
    form = await request.form()
    columns = _posted_columns(form, run)
    name = str(form.get("mapping_name") or "")
    try:
        saved = mapping_.save_mapping(db, actor=actor(user), kind=run.kind, name=name, columns=columns)
    except KokyakuError as exc:
        db.rollback()
        message = gettext(locale_of(request), exc.message, **exc.params)
        if hasattr(exc, "problems"):
            message = "; ".join(gettext(locale_of(request), m, **p) for _f, m, p in exc.problems)
        run = _run_of(db, user, run_id)
        return render(
            request, "imports/preview.html", _preview_context(request, db, run, columns, [message]), 422
        )
    return RedirectResponse(f"/imports/{run_id}?mapping={quote(saved.name)}", status_code=303)


@router.post("/imports/{run_id}/start", response_class=HTMLResponse, dependencies=[Csrf])
async def start(request: Request, db: DB, user: Writer, run_id: int) -> Response:
    run = _run_of(db, user, run_id)
    form = await request.form()
    locale = locale_of(request)
    mode = str(form.get("mode") or "")
    if run.status in ("queued", "running"):  # a second click on Start
        return RedirectResponse(f"/imports/{run.id}", status_code=303)
    columns = _posted_columns(form, run) if any(k.startswith("col-") for k in form) else run.columns
    problems = mapping_.check(run.kind, columns, mapping_.custom_defs(db, run.kind))
    if mode not in MODES:
        problems.append(("mode", "Not one of the allowed values.", {}))
    if problems:
        messages = [f"{f}: {gettext(locale, m, **p)}" if f != "columns" else gettext(locale, m, **p)
                    for f, m, p in problems]  # fmt: skip
        return render(
            request, "imports/preview.html", _preview_context(request, db, run, columns, messages), 422
        )
    if run.status != "uploaded":
        # A finished run (say, a dry run) is not reused: the real import gets a run of its own.
        run = service.create_run(
            db, kind=run.kind, path=Path(run.path), filename=run.filename, size=run.size, actor=actor(user),
            encoding=run.encoding, locale=locale,
            errors_path=Path(run.path).with_suffix(f".{secrets.token_hex(4)}.errors.csv"),
        )  # fmt: skip
    run.columns = columns
    run.mode = mode
    run.status = "queued"
    run.locale = locale
    db.flush()
    run.job_id = enqueue_run(db, run_id=run.id, path=run.path, actor=actor(user), context=_context(request))
    return RedirectResponse(f"/imports/{run.id}", status_code=303)


def _run_context(request: Request, db: Session, run: ImportRun) -> dict[str, Any]:
    locale = locale_of(request)
    job = db.get(Job, run.job_id) if run.job_id else None
    errors = [
        {**e, "text": gettext(locale, e["message"], **(e.get("params") or {}))} for e in (run.errors or [])
    ]
    return {
        "run": run, "job": job, "errors": errors, "kind_label": KIND_LABELS[run.kind],
        "mode_label": MODE_LABELS.get(run.mode, run.mode),
        "message": service.file_error_text(run, locale), "active": run.status in ("queued", "running"),
        "has_error_file": bool(run.errors_path and run.invalid and Path(run.errors_path).exists()),
        "unknown": mapping_.unknown_headers(run.columns or {}),
    }  # fmt: skip


@router.get("/imports/{run_id}/progress", response_class=HTMLResponse)
def progress(request: Request, db: DB, user: Writer, run_id: int) -> Response:
    """The results block; the page reloads it when the job's progress block reports the job finished."""
    run = _run_of(db, user, run_id)
    return render(request, "imports/_results.html", _run_context(request, db, run))


@router.get("/imports/{run_id}/errors.csv")
def error_file(db: DB, user: Writer, run_id: int) -> Response:
    run = _run_of(db, user, run_id)
    if not run.errors_path or not Path(run.errors_path).exists():
        raise service.ImportRunNotFound(id=run_id)
    name = f"{Path(run.filename).stem}-errors.csv"
    return FileResponse(run.errors_path, media_type="text/csv; charset=utf-8", filename=name)


# ---------------------------------------------------------------- export downloads


def _download(request: Request, what: str, fmt: str, **kwargs: Any) -> Response:
    fmt = fmt if fmt in exporting.FORMATS else "csv"
    stamp = date.today().strftime("%Y%m%d")
    body = exporting.stream(request.app.state.db, what, fmt, **kwargs)
    headers = {"Content-Disposition": f'attachment; filename="{what}-{stamp}.{fmt}"'}
    return StreamingResponse(body, media_type=exporting.MEDIA_TYPES[fmt], headers=headers)


def customer_filters(params: Any) -> CustomerFilters:
    """The customer list's filters from query parameters (the same names as the list page)."""
    owner, company = params.get("owner_id") or "", params.get("company_id") or ""
    kind = params.get("kind")
    return CustomerFilters(
        kind=kind if kind in ("person", "company") else None,
        prefecture=(params.get("prefecture") or "")[:10] or None,
        owner_id=int(owner) if owner.isdigit() else None,
        company_id=int(company) if company.isdigit() else None,
        gender=params.get("gender") if params.get("gender") in GENDERS else None,
        tag=(params.get("tag") or "").strip()[:50] or None,
        q=(params.get("q") or "").strip()[:100] or None,
    )


def order_filters(params: Any, tz: str) -> OrderFilters:
    zone = ZoneInfo(tz)

    def day(name: str) -> date | None:
        # "from"/"to" as in the API; the orders page calls them date_from/date_to
        try:
            return date.fromisoformat(params.get(name) or params.get(f"date_{name}") or "")
        except ValueError:
            return None

    start, end = day("from"), day("to")
    customer = params.get("customer_id") or ""
    return OrderFilters(
        customer_id=int(customer) if customer.isdigit() else None,
        status=params.get("status") if params.get("status") in ORDER_STATUSES else None,
        channel=params.get("channel") if params.get("channel") in ORDER_CHANNELS else None,
        ordered_from=datetime.combine(start, time(0), tzinfo=zone) if start else None,
        ordered_to=datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone) if end else None,
    )


@router.get("/exports/customers")
def export_customers(request: Request, user: Exporter) -> Response:
    p = request.query_params
    segment = p.get("segment_id") or ""
    tz = request.app.state.settings.timezone
    return _download(
        request, "customers", p.get("format") or "csv", filters=customer_filters(p),
        locale=locale_of(request), tz=tz, segment_id=int(segment) if segment.isdigit() else None,
    )  # fmt: skip


@router.get("/exports/orders")
def export_orders(request: Request, user: Exporter) -> Response:
    p = request.query_params
    tz = request.app.state.settings.timezone
    filters = order_filters(p, tz)
    return _download(
        request, "orders", p.get("format") or "csv", filters=filters, locale=locale_of(request), tz=tz
    )
