"""Google API error bodies, as the real Generative Language API returns them.

Every failure inside the emulator is an ``EmulatorError``; the app turns it into
``{"error": {"code", "message", "status", "details"?}}`` with the same HTTP status, which
the SDK maps to ``google.genai.errors.ClientError``/``ServerError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import JSONResponse

STATUS_BY_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
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


def model_closed(model: str) -> EmulatorError:
    """404 for a model closed to new projects (the API's wording)."""
    return EmulatorError(
        404,
        f"This model models/{model} is no longer available to new users. Please update your"
        " code to use a newer model for the latest features and improvements.",
    )


# --- per-model request rules (thinking, media resolution) -------------------------------


def thinking_budget_zero() -> EmulatorError:
    """400 for thinking_budget 0 on a model that only thinks (python-genai#2936)."""
    return invalid_argument("Budget 0 is invalid. This model only works in thinking mode.")


def thinking_budget_range(budget: int, low: int, high: int) -> EmulatorError:
    """400 for a thinking budget outside the model's range."""
    return invalid_argument(
        f"The thinking budget {budget} is invalid. Please choose a value between {low} and {high}."
    )


def thinking_level_unsupported(level: str) -> EmulatorError:
    """400 for a thinking level the model does not take."""
    return invalid_argument(
        f"Thinking level {level} is not supported for this model. Please retry with other"
        " thinking level."
    )


def thinking_level_and_budget() -> EmulatorError:
    """400 for thinkingConfig with both a level and a budget (the API's own wording)."""
    return invalid_argument("You can only set only one of thinking budget and thinking level.")


def per_part_media_resolution_unsupported() -> EmulatorError:
    """400 for a part-level mediaResolution on a model without per-part support."""
    return invalid_argument("Per part media resolution is not supported for this Model.")


def media_resolution_value(where: str, value: str) -> EmulatorError:
    """400 for a media resolution level the field does not take (ULTRA_HIGH at the top)."""
    return invalid_argument(
        f"Invalid value at '{where}' (type.googleapis.com/google.ai.generativelanguage."
        f'v1beta.GenerationConfig.MediaResolution), "{value}"'
    )


def url_unreachable(uri: str) -> EmulatorError:
    """400 for an https fileData URI the service cannot fetch."""
    return invalid_argument(
        f"Cannot fetch content from the provided URL. Please ensure the URL is valid and"
        f" accessible by Gemini API. URL: {uri}"
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


def bad_request(violations: Sequence[tuple[str, str]]) -> EmulatorError:
    """400 for a body the ProtoJSON front end refuses: one ``(field, description)`` each.

    As Google sends it: the descriptions joined by newlines as the message, and a
    ``google.rpc.BadRequest`` listing them (``field`` left out for the top level).
    """
    field_violations = [
        ({"field": field} if field else {}) | {"description": description}
        for field, description in violations
    ]
    return EmulatorError(
        400,
        "\n".join(description for _, description in violations),
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": field_violations,
            }
        ],
    )


def unsupported_file_uri(uri: str) -> EmulatorError:
    """400 for a fileData URI that does not name a File API file at all."""
    return invalid_argument(f"Invalid or unsupported file uri: {uri}")


# --- File API ---------------------------------------------------------------------------


def file_not_found(file_id: str) -> EmulatorError:
    """404 from files.get/delete for an id that was never uploaded or was deleted."""
    return EmulatorError(404, f"File files/{file_id} not found.")


def file_permission_denied(file_id: str) -> EmulatorError:
    """403 for an expired file, and for any unusable URI in generateContent.

    The real service answers this for files past their expiry and (as users report) for
    deleted or unknown files named in a prompt.
    """
    return EmulatorError(
        403, f"You do not have permission to access the File {file_id} or it may not exist."
    )


def file_not_active(file_id: str) -> EmulatorError:
    """400 FAILED_PRECONDITION for a PROCESSING or FAILED file used in a prompt."""
    return EmulatorError(
        400,
        f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
        status="FAILED_PRECONDITION",
    )


def file_already_exists(file_id: str) -> EmulatorError:
    """409 for an upload that asks for a name already in use."""
    return EmulatorError(409, f"File files/{file_id} already exists.")


def invalid_file_name(name: str) -> EmulatorError:
    """400 for a requested file name outside ``[a-z0-9-]{1,40}`` (no leading/trailing dash)."""
    return invalid_argument(
        f"Invalid file name: {name}. The ID can contain up to 40 characters that are"
        " lowercase alphanumeric or dashes (-), and cannot start or end with a dash."
    )


def file_too_large(size: int, limit: int) -> EmulatorError:
    """400 for an upload declaring more bytes than a file may hold."""
    return invalid_argument(f"File size {size} bytes exceeds the maximum of {limit} bytes.")


def upload_error(message: str) -> EmulatorError:
    """400 for a resumable-upload protocol violation (bad command, offset or size)."""
    return invalid_argument(message)


def upload_session_not_found() -> EmulatorError:
    """404 for a chunk sent to an unknown, finished or cancelled upload URL."""
    return EmulatorError(404, "Upload session not found, finished or cancelled.")


def invalid_page_token() -> EmulatorError:
    """400 for a files.list pageToken the emulator did not issue."""
    return invalid_argument("Invalid page token.")


# --- Injected faults and quotas ---------------------------------------------------------

# Messages of the real service for the statuses ``always_fail`` may name.
FAILURE_MESSAGES: dict[int, str] = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    500: f"An internal error has occurred. Please retry or report in {TROUBLESHOOTING_URL}",
    503: "This model is currently experiencing high demand. Spikes in demand are usually"
    " temporary. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


def failure(code: int) -> EmulatorError:
    """The real service's error for ``code`` (500 INTERNAL, 503 UNAVAILABLE...)."""
    return EmulatorError(code, FAILURE_MESSAGES.get(code, "Unknown error."))


def client_closed() -> EmulatorError:
    """499 CANCELLED for a call whose client left while it hung (nobody reads the answer)."""
    return EmulatorError(499, "The client closed the request.", status="CANCELLED")
