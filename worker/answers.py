"""What a 200 from generateContent means: the answer's text, or why there is none.

Each way Gemini answers without an answer has its own error code (``GeminiCallError.code``):

- ``blocked_prompt``: ``promptFeedback.blockReason`` (SAFETY, PROHIBITED_CONTENT, ...);
  nothing was generated. Not retried: the same request is refused again.
- ``blocked_output``: a candidate withheld for its content (finish reason SAFETY,
  RECITATION, PROHIBITED_CONTENT, IMAGE_SAFETY, BLOCKLIST, SPII and their image and
  Model Armor variants). Not retried, for the same reason.
- ``malformed_response``: finish reason MALFORMED_RESPONSE or MALFORMED_FUNCTION_CALL, a
  generation that came out broken. Retried with backoff: Google's troubleshooting advice
  is to send the request again, and a new sample usually comes out whole.
- ``answer_stopped``: finish reason OTHER (or one this code does not know): Gemini says
  nothing of why. Not retried; the message says to try again later or change the input.
- ``max_tokens_exhausted``: an empty candidate with finish reason MAX_TOKENS: thinking
  (which shares maxOutputTokens on thinking models) used the whole cap. The pipeline
  raises the cap once and asks again (worker/thinking.py); a second one fails the job.
- ``answer_truncated``: some text, cut at maxOutputTokens (finish reason MAX_TOKENS). Never
  kept as a success (a cut caption reads like a whole one): handled like
  ``max_tokens_exhausted``, the cap raised once, then the job fails with this code.
- ``empty_answer``: no candidate and no block reason, or a candidate with no text part
  (only thoughts, or no parts at all) that finished normally. Retried with backoff: a
  known transient of the service.

Thought parts (``thought: true``) and ``thoughtSignature`` never reach the text: only
non-thought text parts of the first candidate are joined (as the SDK's ``response.text``
does in 3.6.1, done here so the rule does not depend on the SDK's version).
"""

from __future__ import annotations

from google.genai import types

from visionq.models.outcomes import Usage
from visionq.worker.errors import GeminiAnswer, GeminiCallError

# finishReason values that mean the answer was withheld for its content.
BLOCKED_OUTPUT = {
    "SAFETY": "Gemini's safety filters withheld the answer",
    "RECITATION": "the answer would have recited existing material (RECITATION)",
    "PROHIBITED_CONTENT": "the content is prohibited by Google's usage policy",
    "BLOCKLIST": "the answer contained a term from a blocklist",
    "SPII": "the answer would have contained sensitive personal information (SPII)",
    "IMAGE_SAFETY": "Gemini's safety filters withheld the answer about the image",
    "IMAGE_PROHIBITED_CONTENT": "the image's content is prohibited by Google's usage policy",
    "IMAGE_RECITATION": "the answer would have recited an existing image",
    "MODEL_ARMOR": "a Model Armor policy withheld the answer",
}
_BLOCKED_OUTPUT_ADVICE = {
    "RECITATION": "ask for a description or summary rather than a transcription",
    "SPII": "ask without personal data, or crop it out of the image",
    "BLOCKLIST": "rephrase the prompt",
}
MALFORMED = frozenset({"MALFORMED_RESPONSE", "MALFORMED_FUNCTION_CALL"})
# Finish reasons of a normal end (or none given).
_NORMAL = frozenset({"STOP", "FINISH_REASON_UNSPECIFIED", None})


def answer_from_response(response: types.GenerateContentResponse) -> GeminiAnswer:
    """The answer of a generateContent response; GeminiCallError when it holds none."""
    usage = usage_from_metadata(response.usage_metadata)
    served = response.model_version

    def fail(code: str, message: str, *, retryable: bool = False) -> GeminiCallError:
        return GeminiCallError(
            code, message, retryable=retryable, usage=usage, http_status=200, model_version=served
        )

    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = str(feedback.block_reason.value)
        detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        raise fail(
            "blocked_prompt",
            f"Gemini refused the request: its prompt or image was blocked ({reason}){detail}. "
            "Nothing was generated; change the image or the prompt (the same request is "
            "refused again).",
        )
    if not response.candidates:
        raise fail(
            "empty_answer",
            "Gemini answered with no candidate and no block reason (a transient of the "
            "service); the call is retried.",
            retryable=True,
        )
    candidate = response.candidates[0]
    finish = str(candidate.finish_reason.value) if candidate.finish_reason else None
    text = answer_text(candidate)
    if finish in BLOCKED_OUTPUT:
        advice = _BLOCKED_OUTPUT_ADVICE.get(finish, "change the image or the prompt")
        raise fail(
            "blocked_output",
            f"Gemini withheld the answer (finish reason {finish}): {BLOCKED_OUTPUT[finish]}; "
            f"{advice}.",
        )
    if finish in MALFORMED:
        raise fail(
            "malformed_response",
            f"Gemini's answer came out malformed (finish reason {finish}); the call is "
            "retried, as Google advises.",
            retryable=True,
        )
    if finish == "MAX_TOKENS" and not text.strip():
        thoughts = usage.thoughts_tokens if usage else None
        spent = f"its thinking used {thoughts} tokens" if thoughts else "it used every token"
        raise fail(
            "max_tokens_exhausted",
            f"Gemini returned no answer: {spent} and hit max_output_tokens (finish reason "
            "MAX_TOKENS), which thinking shares with the answer.",
        )
    if finish == "MAX_TOKENS":
        raise fail(
            "answer_truncated",
            f"Gemini's answer was cut at max_output_tokens after {len(text)} characters "
            "(finish reason MAX_TOKENS).",
        )
    if finish not in _NORMAL:
        raise fail(
            "answer_stopped",
            f"Gemini stopped without giving a reason (finish reason {finish}). Submit the "
            "job again later; if it keeps happening, change the image or the prompt.",
        )
    if not text.strip():
        parts = candidate.content.parts if candidate.content else None
        what = "only thoughts" if parts else "no parts"
        raise fail(
            "empty_answer",
            f"Gemini returned a candidate with {what} and no text (finish reason "
            f"{finish or 'unspecified'}), a transient of the service; the call is retried.",
            retryable=True,
        )
    return GeminiAnswer(text=text, usage=usage, model_version=served, finish_reason=finish)


# The response header in which Gemini names the tier that served a call (a priority call
# over its limit is served, and billed, at standard).
SERVICE_TIER_HEADER = "x-gemini-service-tier"


def served_tier(response: types.GenerateContentResponse, asked: str) -> str:
    """The tier that served ``response``: its x-gemini-service-tier header, lower-cased,
    else the tier ``asked`` (Google omits the header on some paths)."""
    http = response.sdk_http_response
    headers = (http.headers if http is not None else None) or {}
    for name, value in headers.items():
        if name.lower() == SERVICE_TIER_HEADER and value.strip():
            return value.strip().lower().removeprefix("service_tier_")
    return asked


def answer_text(candidate: types.Candidate) -> str:
    """The candidate's non-thought text parts, joined; thoughts and signatures left out."""
    if candidate.content is None or not candidate.content.parts:
        return ""
    return "".join(
        part.text for part in candidate.content.parts if part.text is not None and not part.thought
    )


def usage_from_metadata(
    metadata: types.GenerateContentResponseUsageMetadata | None,
) -> Usage | None:
    """Our usage record from the SDK's usage_metadata."""
    if metadata is None:
        return None
    return Usage(
        prompt_tokens=metadata.prompt_token_count,
        candidates_tokens=metadata.candidates_token_count,
        thoughts_tokens=metadata.thoughts_token_count,
        cached_tokens=metadata.cached_content_token_count,
        total_tokens=metadata.total_token_count,
        raw=metadata.model_dump(mode="json", exclude_none=True),
    )


def _base_id(model: str) -> str:
    """A model id without ``models/`` and without a version suffix (``-001``)."""
    name = model.removeprefix("models/")
    head, _, tail = name.rpartition("-")
    return head if head and len(tail) == 3 and tail.isdigit() else name


def routed_model(asked: str, model_version: str | None) -> str | None:
    """The model that answered when it is another one than ``asked`` (Google's silent
    routing of retired ids to a successor), else None. A version suffix of the asked
    model (gemini-3.6-flash-001 for gemini-3.6-flash) is not routing."""
    if not model_version:
        return None
    served = model_version.removeprefix("models/")
    return None if _base_id(served) == _base_id(asked) else served
