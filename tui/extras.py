"""The console's optional parts, set up from the command line before the screen opens:
theme (tui/theming.py), the user's keymap (tui/keymap.py) and `--record FILE`
(probes/record.py). Bad input raises ValueError with a one-line message (tui/cli.py prints it).
"""

from __future__ import annotations

import os
from typing import Any


def configure(app: Any, *, theme: str | None = None, config: Any = None, record: str | None = None) -> None:
    from tui import keymap, theming

    keymap.apply(app, config)
    app.theme = theming.choose(app, cli=theme, config_theme=getattr(config, "theme", "") or "")
    if os.environ.get("TENANTSCOPE_SERVE") != "1":  # a served session does not change the server's choice
        if theme:
            theming.remember(app.theme)
        # subscribing needs a running app: do it as soon as it runs
        app.call_later(app.theme_changed_signal.subscribe, app, lambda t: theming.remember(t.name))
    if record:
        start_recording(app, record)


def start_recording(app: Any, path: str) -> Any:
    """Record every State the app's source publishes (at most one frame a second)."""
    from probes import record

    try:
        rec = record.Recorder(path, min_interval=1.0)
    except record.RecordError as e:
        raise ValueError(str(e)) from None

    def on_state(state: Any) -> None:
        if not rec.add(state) and rec.full:
            if not getattr(app, "_record_full_told", False):
                app._record_full_told = True
                app.call_later(
                    app.notify, f"recording {path}: size limit reached, recording stopped", severity="warning"
                )

    app.add_state_listener(on_state)
    app.recorder = rec
    return rec
