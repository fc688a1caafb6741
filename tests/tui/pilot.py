"""What the pilot tests share: waiting for the app's workers and for its lazily mounted tabs."""

from __future__ import annotations

from qkv.tui.app import QkvApp


async def settle(app: QkvApp, pilot) -> None:
    """Wait until no worker runs (a finished worker may schedule the next one from the UI thread)."""
    for _ in range(400):
        await pilot.pause()
        if not any(w.is_running or w.state.name == "PENDING" for w in app.workers):
            await pilot.pause()
            return
        await app.workers.wait_for_complete()
    raise AssertionError("workers did not settle")


async def ready(app: QkvApp, pilot) -> None:
    """Wait for the lazily mounted tabs."""
    for _ in range(200):
        if app.tabs is not None:
            return
        await pilot.pause(0.01)
    raise AssertionError("tabs never mounted")
