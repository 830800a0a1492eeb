"""AdmissionReview v1 in and out: reading a request, writing a response, JSON Patch paths."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

API_VERSION = "admission.k8s.io/v1"


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 with a request."""


def request_of(review: Any) -> Mapping[str, Any]:
    """The ``request`` of an AdmissionReview; raises :class:`BadReview` otherwise."""
    if not isinstance(review, Mapping) or review.get("kind") != "AdmissionReview":
        raise BadReview("not an AdmissionReview")
    if review.get("apiVersion") != API_VERSION:
        raise BadReview(f"apiVersion {review.get('apiVersion')!r} is not {API_VERSION}")
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
        raise BadReview("the AdmissionReview has no request with a uid")
    return request


def response(
    uid: str,
    *,
    allowed: bool = True,
    message: str = "",
    code: int = 403,
    reason: str = "Forbidden",
    patch: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """An AdmissionReview answering request ``uid``."""
    out: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        out["status"] = {"code": code, "reason": reason, "message": message}
    if patch:
        out["patchType"] = "JSONPatch"
        out["patch"] = base64.b64encode(orjson.dumps(list(patch))).decode()
    if warnings:
        # The API server may truncate a warning over 256 characters; keep them whole.
        out["warnings"] = [w if len(w) <= 256 else w[:253] + "..." for w in warnings[:8]]
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": out}


def pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901) from path segments: ``pointer("metadata", "labels", "a/b")``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
