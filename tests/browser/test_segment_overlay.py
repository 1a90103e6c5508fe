"""A segment job's masks drawn where the result's mask PNGs say, in the browser's pixels.

Each mask is shown alone and hidden again; the difference is what it painted. It must match
the mask PNG (served by the API for that object) scaled to the box on screen, stay inside
the box, and blend the object's colour at 45 % over the image.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
from PIL import Image

from tests.browser.drive import (
    diff_mask,
    expect,
    hex_rgb,
    open_job,
    overlay_origin,
    overlay_png,
    shot,
    sign_in,
    tid,
    wait_job,
)
from tests.browser.pixels import iou
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import submit
from visionq.emulator.shapes import Shape, draw_scene, encode

# Colours far from the first two of the console's palette, so a 45 % fill over them always
# changes a pixel by more than the diff threshold.
SHAPES = [
    Shape(kind="rectangle", color="blue", box=(140, 120, 420, 330)),
    Shape(kind="ellipse", color="yellow", box=(560, 300, 860, 620)),
]


def test_segment_masks_are_painted_where_the_mask_pngs_say(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    png = encode(draw_scene(1000, 750, SHAPES), "PNG")
    job_id = submit(api_client, png, task="segment").raise_for_status().json()["id"]
    job = wait_job(api_client, job_id)
    assert job["status"] == "succeeded", job
    objects = job["result"]["objects"]
    assert sorted(o["label"] for o in objects) == sorted(s.label for s in SHAPES)
    masks = []
    for obj in objects:
        answer = api_client.get(obj["mask_url"]).raise_for_status()
        with Image.open(io.BytesIO(answer.content)) as mask:
            masks.append(mask.convert("L"))

    sign_in(page, stack)
    open_job(page, job_id)
    overlay = tid(page, "overlay")
    expect(overlay).to_have_attribute("data-ready", "true")
    tid(page, "layer-boxes").set_checked(False)
    tid(page, "layer-labels").set_checked(False)
    tid(page, "layer-masks").set_checked(True)
    tid(page, "objects-none").click()
    scale = float(overlay.get_attribute("data-scale") or "nan")
    assert 0 < scale < 1, scale
    dx, dy = overlay_origin(page)
    nodes = tid(page, "overlay-object")
    for index, (obj, mask) in enumerate(zip(objects, masks, strict=True)):
        toggle = page.locator(f'[data-testid="object-toggle"][data-index="{index}"]')
        toggle.set_checked(True)
        expect(nodes.nth(index)).to_have_attribute("data-visible", "true")
        shown = overlay_png(page)
        toggle.set_checked(False)
        expect(nodes.nth(index)).to_have_attribute("data-visible", "false")
        hidden = overlay_png(page)
        painted = diff_mask(shown, hidden)

        x0, y0, x1, y1 = obj["box"]
        assert mask.size == (x1 - x0, y1 - y0), (mask.size, obj["box"])
        size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
        placed = Image.new("L", (shown.shape[1], shown.shape[0]), 0)
        corner = (round(dx + x0 * scale), round(dy + y0 * scale))
        placed.paste(mask.resize(size, Image.Resampling.NEAREST), corner)
        expected = np.asarray(placed) > 127
        overlap = iou(painted, expected)
        assert overlap >= 0.85, f"{obj['label']}: mask painted with IoU {overlap:.2f}"
        ys, xs = np.nonzero(painted)
        assert xs.min() >= dx + x0 * scale - 2 and xs.max() <= dx + x1 * scale + 2, obj
        assert ys.min() >= dy + y0 * scale - 2 and ys.max() <= dy + y1 * scale + 2, obj
        # IoU forgives a few pixels' shift of a large mask: its extent must match too.
        wy, wx = np.nonzero(expected)
        extent = (xs.min(), ys.min(), xs.max(), ys.max())
        wanted = (wx.min(), wy.min(), wx.max(), wy.max())
        assert all(abs(int(a) - int(b)) <= 2 for a, b in zip(extent, wanted, strict=True)), (
            f"{obj['label']}: mask painted over {extent}, its PNG covers {wanted}"
        )

        # Deep inside the mask the fill blends the object's colour at 45 % over the image.
        cy, cx = (round(v) for v in np.argwhere(expected).mean(axis=0))
        assert expected[cy - 5 : cy + 6, cx - 5 : cx + 6].all(), "mask centre not inside it"
        colour = np.array(hex_rgb(nodes.nth(index).get_attribute("data-color") or ""))
        blend = 0.55 * hidden[cy, cx] + 0.45 * colour
        assert np.all(np.abs(shown[cy, cx] - blend) <= 15), (shown[cy, cx], blend)

    tid(page, "objects-all").click()
    tid(page, "layer-boxes").set_checked(True)
    tid(page, "layer-labels").set_checked(True)
    shot(page, "job-segment")
