"""A folder dropped on the Submit page lists its images by relative path, read recursively.

Playwright cannot drop a real directory: a DataTransfer built by script holds File objects
only, and no page API makes a FileSystemDirectoryEntry. So the drop carries one item whose
webkitGetAsEntry() is a stand-in directory entry (the FileSystem Entry API's shape: isFile,
isDirectory, fullPath, createReader().readEntries in batches until an empty one, file(cb))
over real File objects; what is tested is dropzone.js's walk, filter and order. The real
folder route a browser offers (the folder picker, webkitdirectory) is
test_submit_batch.py::test_chosen_folder_lists_its_images_by_relative_path.
"""

from __future__ import annotations

import base64

from tests.browser.drive import expect, sign_in, tid
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png

DROP_FOLDER = """([zone, png]) => {
    const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
    const file = (path) => ({
        isFile: true, isDirectory: false, name: path.split("/").pop(), fullPath: "/" + path,
        file: (done) => done(new File([bytes], path.split("/").pop(),
            {type: path.endsWith(".png") ? "image/png" : "text/plain"})),
    });
    // readEntries answers in batches, then an empty one (as Chromium does past 100 entries).
    const folder = (path, batches) => ({
        isFile: false, isDirectory: true, name: path.split("/").pop(), fullPath: "/" + path,
        createReader: () => {
            const left = [...batches, []];
            return { readEntries: (done) => setTimeout(() => done(left.shift()), 0) };
        },
    });
    const root = folder("shots", [
        [file("shots/img10.png"), file("shots/notes.txt")],
        [folder("shots/day2", [[file("shots/day2/b.png")]]), file("shots/img2.png")],
    ]);
    const dt = new DataTransfer();
    const item = {kind: "file", type: "", webkitGetAsEntry: () => root, getAsFile: () => null};
    Object.defineProperty(dt, "items", {value: [item]});
    const target = document.querySelector(zone);
    for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
            cancelable: true}));
    }
}"""


def test_dropped_folder_lists_its_images_by_relative_path(page, stack: ConsoleStack) -> None:
    png = base64.b64encode(scene_png(seed=111)[0]).decode()
    sign_in(page, stack, route="#/submit")
    page.evaluate(DROP_FOLDER, ['[data-testid="drop-zone"]', png])
    expect(tid(page, "file-item")).to_have_count(3)
    names = tid(page, "file-item").evaluate_all("items => items.map(i => i.dataset.name)")
    assert names == ["shots/day2/b.png", "shots/img2.png", "shots/img10.png"], names
