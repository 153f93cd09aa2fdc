"""Catalog admin: the active catalog (products, rules, price books), its versions, YAML
editing, and CSV import and export of products and price books."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from documents.quote_document import FIELDS, QuoteDocumentError, default_template
from store.commerce import CatalogVersion
from store.db import write_lock
from web.auth import CurrentUser, require
from web.deps import SessionDep
from web.downloads import CsvResponse, content_disposition
from web.params import BookName, PathId
from web.render import render
from web.services import catalog as catalog_service
from web.services import quote_documents as docs

router = APIRouter(include_in_schema=False)
ADMINS = ("admin", "deal_desk")


@router.get("/catalog", dependencies=[require(*ADMINS)])
def catalog_page(request: Request, session: SessionDep) -> Response:
    versions = session.scalars(select(CatalogVersion).order_by(
        CatalogVersion.version.desc()).limit(30)).all()
    spec = catalog_service.spec_of(session, versions[0].version)[1] if versions else None
    template = docs.active_template(session)
    try:
        used: list[str] | None = docs.template_fields(request.app.state.blobs, template)
    except QuoteDocumentError:
        used = None  # an old upload this version can't read: the page still shows
    return render(request, "catalog.html", {"versions": versions, "spec": spec,
                                            "template": template, "fields": FIELDS,
                                            "used": used,
                                            "sheets": docs.product_documents(session)})


@router.post("/catalog/product-documents", dependencies=[require(*ADMINS)])
def add_sheet(request: Request, user: CurrentUser, session: SessionDep,
                    sku: Annotated[str, Form(max_length=200)],
                    file: Annotated[UploadFile, File()]
                    ) -> Response:
    data = file.file.read(docs.MAX_ATTACHMENT + 1)
    docs.add_product_document(session, request.app.state.blobs, user, sku,
                              file.filename or "spec sheet", file.content_type or "", data)
    session.commit()
    return RedirectResponse("/catalog#spec-sheets", status_code=303)


@router.post("/catalog/product-documents/{doc_id}/delete", dependencies=[require(*ADMINS)])
def remove_sheet(doc_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    write_lock(session)
    docs.remove_product_document(session, user, doc_id)
    session.commit()
    return RedirectResponse("/catalog#spec-sheets", status_code=303)


@router.get("/catalog/quote-template.docx", dependencies=[require(*ADMINS)])
def template_download(request: Request, session: SessionDep) -> Response:
    row = docs.active_template(session)
    data = request.app.state.blobs.get(row.sha256) if row else default_template()
    return Response(data, media_type="application/vnd.openxmlformats-officedocument."
                    "wordprocessingml.document",
                    headers={"Content-Disposition": content_disposition("quote-template.docx")})


@router.post("/catalog/quote-template", dependencies=[require(*ADMINS)])
def template_upload(request: Request, user: CurrentUser, session: SessionDep,
                          file: Annotated[UploadFile, File()]) -> Response:
    data = file.file.read(docs.MAX_ATTACHMENT + 1)
    docs.upload_template(session, request.app.state.blobs, user, file.filename or "template",
                         data)
    session.commit()
    return RedirectResponse("/catalog?template=1", status_code=303)


@router.post("/catalog/quote-template/reset", dependencies=[require(*ADMINS)])
def template_reset(user: CurrentUser, session: SessionDep) -> Response:
    docs.reset_template(session, user)
    session.commit()
    return RedirectResponse("/catalog?template=1", status_code=303)


@router.get("/catalog/products.csv", dependencies=[require(*ADMINS)])
def products_csv(session: SessionDep) -> Response:
    return CsvResponse(catalog_service.products_csv(catalog_service.active_version(session)),
                       headers={"Content-Disposition": content_disposition("products.csv")})


@router.get("/catalog/price-books/{name}.csv", dependencies=[require(*ADMINS)])
def book_csv(name: BookName, session: SessionDep) -> Response:
    return CsvResponse(catalog_service.price_book_csv(catalog_service.active_version(session),
                                                      name),
                       headers={"Content-Disposition": content_disposition(f"{name}.csv")})


def _csv(upload: UploadFile) -> str:
    return catalog_service.upload_text(upload.file.read(catalog_service.MAX_UPLOAD + 1), "file")


@router.post("/catalog/products", dependencies=[require(*ADMINS)])
def import_products(request: Request, user: CurrentUser, session: SessionDep,
                          file: Annotated[UploadFile, File()]) -> Response:
    text = _csv(file)
    write_lock(session)
    row = catalog_service.import_products(session, text, user)
    session.commit()
    return RedirectResponse(f"/catalog?saved={row.version}", status_code=303)


@router.post("/catalog/price-books", dependencies=[require(*ADMINS)])
def import_book(request: Request, user: CurrentUser, session: SessionDep,
                      name: Annotated[str, Form(max_length=200)],
                      file: Annotated[UploadFile, File()]
                      ) -> Response:
    text = _csv(file)
    write_lock(session)
    row = catalog_service.import_price_book(session, name, text, user)
    session.commit()
    return RedirectResponse(f"/catalog?saved={row.version}", status_code=303)


@router.post("/catalog", dependencies=[require(*ADMINS)])
def save_yaml(request: Request, user: CurrentUser, session: SessionDep,
                    source: Annotated[str, Form()]) -> Response:
    write_lock(session)
    row = catalog_service.save_catalog(session, source, user, note="edited in the catalog page")
    session.commit()
    return RedirectResponse(f"/catalog?saved={row.version}", status_code=303)
