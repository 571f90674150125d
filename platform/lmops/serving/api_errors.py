"""OpenAI-style errors: ``ApiError``, the handlers that turn every client error into
one, and the error responses the routes document in the OpenAPI spec.

The body is always ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmops.serving.schemas import ErrorResponse

ERROR_RESPONSES = {
    400: {"model": ErrorResponse, "description": "Invalid request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown model"},
    413: {"model": ErrorResponse, "description": "Request too large"},
    429: {"model": ErrorResponse, "description": "Key over its limits; see Retry-After"},
    503: {"model": ErrorResponse, "description": "Server at capacity; see Retry-After"},
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers: dict[str, str] = {}  # e.g. Retry-After on a 429 or 503

    def response(self) -> JSONResponse:
        kind = {
            401: "authentication_error",
            404: "not_found_error",
            413: "invalid_request_error",
            429: "rate_limit_error",
            503: "server_error",
        }
        body = {
            "error": {
                "message": self.message,
                "type": kind.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers or None)


async def _api_error(_, e: ApiError):
    return e.response()


async def _invalid(_, e: RequestValidationError):
    # OpenAI answers a body that does not validate with 400, not FastAPI's 422.
    first = e.errors()[0] if e.errors() else {}
    if first.get("type") == "json_invalid":
        return ApiError(400, "the request body is not valid JSON", code="invalid_json").response()
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    param = ".".join(loc) or None
    text = f"{param}: {msg}" if param else msg
    return ApiError(400, text, param=param, code=first.get("type")).response()


async def _http(_, e: StarletteHTTPException):
    # Starlette's own headers stay: a 405 names the methods the path takes in ``Allow``.
    resp = ApiError(e.status_code, str(e.detail)).response()
    resp.headers.update(e.headers or {})
    return resp


def install_error_handlers(app: FastAPI) -> None:
    """``ApiError``, failed validation and Starlette's own errors (404 on an unknown
    path, 405...) all answer with the OpenAI error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
