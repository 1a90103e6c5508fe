"""The console's formatters (api/console/js/dom.js), run in the browser as the pages run
them: durations never show "60 s" or "60 min", money keeps the digits a small cost needs."""

from __future__ import annotations

from tests.browser.drive import open_console
from tests.browser.stack import ConsoleStack

DURATIONS = {119.6: "2 min 0 s", 3599.7: "1 h 0 min", 59.6: "1 min 0 s", 9.96: "10 s"}
MONEY = {"0": "$0", "0.000490": "$0.000490", "0.0125": "$0.0125", "12.5": "$12.50"}


def test_duration_and_usd(page, stack: ConsoleStack) -> None:
    open_console(page, stack)
    shown = page.evaluate(
        """async ([durations, money]) => {
            const dom = await import("./js/dom.js");
            return [durations.map(dom.duration), money.map(dom.usd)];
        }""",
        [list(DURATIONS), list(MONEY)],
    )
    assert dict(zip(DURATIONS, shown[0], strict=True)) == DURATIONS
    assert dict(zip(MONEY, shown[1], strict=True)) == MONEY
