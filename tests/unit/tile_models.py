"""Test models with the older tile and crop-unit rules (what Gemini 2.x / 1.5 billed), for
the estimate and economy tests: only such rules give the economy plan sizes to choose."""

from typing import Any

from visionq.vision.catalogue import load_catalogue

EVERY_TASK_BUT_SEGMENT = ["caption", "ask", "classify", "detect", "compare", "custom"]
TEST_MODELS: dict[str, Any] = {
    # Like Gemini 2.5 Flash: 258 per 768 tile, thinks by default, budget 0 turns it off.
    "test-tiles": {
        "status": "stable",
        "prices": [
            {
                "standard": {"input": "0.30", "output": "2.50"},
                "batch": {"input": "0.15", "output": "1.25"},
            }
        ],
        "image_tokens": {
            "image_rule": "tiles_768",
            "tile_tokens": 258,
            "small_max_side": 384,
            "media_resolution": {"LOW": 64, "MEDIUM": 256},
        },
        "thinking": {"budget": {"min": 1, "max": 24576, "off": True}, "max_tokens": 24576},
        "tasks": ["caption", "ask", "classify", "detect", "segment", "compare", "custom"],
        "mask_format": "png",
    },
    # Like Gemini 2.5 Flash-Lite: thinks only when asked.
    "test-tiles-lite": {
        "status": "stable",
        "prices": [{"standard": {"input": "0.10", "output": "0.40"}}],
        "image_tokens": {"image_rule": "tiles_768", "tile_tokens": 258, "small_max_side": 384},
        "thinking": {
            "budget": {"min": 512, "max": 24576, "off": True},
            "default_on": False,
            "max_tokens": 24576,
        },
        "tasks": EVERY_TASK_BUT_SEGMENT,
    },
    # Like Gemini 1.5: the crop-unit rule, no thinking and (here) no price.
    "test-crop": {
        "status": "stable",
        "image_tokens": {"image_rule": "crop_unit", "tile_tokens": 258, "small_max_side": 384},
        "tasks": EVERY_TASK_BUT_SEGMENT,
    },
    # Priced only from 2027.
    "test-later": {
        "status": "preview",
        "prices": [{"from": "2027-01-01", "standard": {"input": "1", "output": "2"}}],
        "image_tokens": {"image_rule": "flat", "tile_tokens": 258},
        "tasks": EVERY_TASK_BUT_SEGMENT,
    },
}
CATALOGUE = load_catalogue({"models": TEST_MODELS})
