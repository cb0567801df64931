"""How a status and a severity look: always a symbol and a word, colour only on top.

Colours come from the theme's variables (`status-fail`, ...; defaults: themes/dark.toml), so a theme
change or NO_COLOR never leaves a status readable only by its colour.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.style import Style
from rich.text import Text

import themes
from probes.model import SEVERITY_ORDER, STATUS_ORDER, Finding, Severity, Status

STATUS_LABEL: dict[Status, str] = {
    Status.FAIL: "✗ FAIL",
    Status.ERROR: "? ERROR",
    Status.WARN: "! WARN",
    Status.SKIPPED: "- SKIP",
    Status.PASS: "✓ PASS",
}
STATUS_VAR: dict[Status, str] = {
    Status.FAIL: "status-fail",
    Status.ERROR: "status-error",
    Status.WARN: "status-warn",
    Status.SKIPPED: "status-skip",
    Status.PASS: "status-pass",
}

# Theme variables with their defaults (themes/dark.toml's [variables]), so that every Textual
# theme renders our styles.
THEME_DEFAULTS: dict[str, str] = themes.default_variables()


def theme_style(variables: Mapping[str, str], name: str, bold: bool = False) -> Style:
    colour = variables.get(name) or THEME_DEFAULTS.get(name)
    try:
        return Style(color=colour, bold=bold)
    except Exception:  # a theme value Rich cannot parse: keep the word, drop the colour
        return Style(bold=bold)


def status_text(status: Status, variables: Mapping[str, str]) -> Text:
    return Text(
        STATUS_LABEL.get(status, status.value.upper()),
        style=theme_style(variables, STATUS_VAR.get(status, "status-skip"), bold=status == Status.FAIL),
    )


def severity_text(severity: Severity, variables: Mapping[str, str]) -> Text:
    return Text(severity.value, style=theme_style(variables, f"severity-{severity.value}"))


def finding_sort_key(f: Finding) -> tuple[int, int, tuple[str, ...], str, str, str]:
    """probes.model.STATUS_ORDER (fail, error, warn, skipped, pass); then the most severe
    first; then tenant, id, host, summary. The host before the summary: in a fleet, the same
    check's rows stay in host order while their wording moves (a count, a percentage), instead
    of trading places, which rebuilt the table at idle."""
    return (
        STATUS_ORDER.get(f.status, 99),
        -SEVERITY_ORDER.get(f.severity, 0),
        f.tenants,
        f.check_id,
        f.host,
        f.summary,
    )
