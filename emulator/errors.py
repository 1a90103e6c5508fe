"""Google API error bodies, as the real Generative Language API returns them.

Every failure inside the emulator is an ``EmulatorError``; the app turns it into
``{"error": {"code", "message", "status", "details"?}}`` with the same HTTP status, which
the SDK maps to ``google.genai.errors.ClientError``/``ServerError``.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

STATUS_BY_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

TROUBLESHOOTING_URL = "https://developers.generativeai.google/guide/troubleshooting"
SERVICE = "generativelanguage.googleapis.com"


class EmulatorError(Exception):
    """An API error with its HTTP code, canonical status, message and detail objects."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, "UNKNOWN")
        self.details = details or []

    def body(self) -> dict[str, Any]:
        """The JSON body; ``details`` is left out when empty, like the real service."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> JSONResponse:
        """The HTTP response carrying this error."""
        return JSONResponse(self.body(), status_code=self.code)


def invalid_argument(message: str) -> EmulatorError:
    """A generic 400 INVALID_ARGUMENT."""
    return EmulatorError(400, message)


def missing_api_key() -> EmulatorError:
    """403 for a request that carries no API key at all."""
    return EmulatorError(
        403,
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API.",
    )


def invalid_api_key() -> EmulatorError:
    """400 for an unknown key, with the ErrorInfo the real service attaches."""
    message = "API key not valid. Please pass a valid API key."
    return EmulatorError(
        400,
        message,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": SERVICE},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )


def model_not_found(model: str, version: str, method: str) -> EmulatorError:
    """404 for a model the emulator does not serve."""
    return EmulatorError(
        404,
        f"models/{model} is not found for API version {version}, or is not supported for"
        f" {method}. Call ListModels to see the list of available models and their"
        " supported methods.",
    )


def method_not_found(path: str) -> EmulatorError:
    """404 for an unknown URL, as Google's front end answers it."""
    return EmulatorError(404, f"Method not found: {path}")


def unsupported_mime_type(mime_type: str) -> EmulatorError:
    """400 for inline data of a MIME type the models do not accept."""
    return invalid_argument(f"Unsupported MIME type: {mime_type}")


def payload_too_large(limit: int) -> EmulatorError:
    """400 for a request body over the inline limit."""
    return invalid_argument(f"Request payload size exceeds the limit: {limit} bytes.")


def undecodable_image() -> EmulatorError:
    """400 for bytes that claim an image MIME type but do not decode."""
    return invalid_argument(
        f"Unable to process input image. Please retry or report in {TROUBLESHOOTING_URL}"
    )


def invalid_json(detail: str) -> EmulatorError:
    """400 for a body that is not a JSON object."""
    return invalid_argument(f"Invalid JSON payload received. {detail}")


def unsupported_file_uri(uri: str) -> EmulatorError:
    """400 for a fileData part whose file the emulator does not hold."""
    return invalid_argument(f"Invalid or unsupported file uri: {uri}")
