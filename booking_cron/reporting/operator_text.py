"""Text from the database is shown to operators as text: the one rule, for the terminal and the UI.

Whoever has a login to the app writes client names, org names, templates and schedule labels, and
whatever answers at TWILIO_API_URL writes error codes; `run`, `results`, `backfill`, `audit`,
`doctor` and the Prefect UI's artifacts show them. They are data, never instructions to a
terminal, to rich or to a markdown renderer. The rule, applied where such text meets an output:

- `printable`: every character a terminal or a browser acts on instead of showing becomes its
  Python escape, so an operator sees that it is there: C0 and C1 controls and DEL (ESC starts OSC 8
  links, OSC 0 window titles and CSI sequences such as clear-screen; BEL ends them; newline, tab and
  carriage return break rows), the line and paragraph separators, the bidi marks, embeddings,
  overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) and lone
  surrogates. "\\x1b]0;x\\x07" becomes the ten characters `\\x1b]0;x\\x07`, U+202E becomes
  `\\u202e`. Every other character, a backslash too, is shown as it is.
- `terminal_text`: printable text as a rich `Text`, which rich prints as it is: no markup
  (`[link=...]`, `[bold]`, `[/]`) and no emoji codes (`:smile:`) are read in it.
- `markdown_text`: printable text with every ASCII punctuation character backslash-escaped.
  CommonMark lets any ASCII punctuation be escaped and then shows it literally, so no link, image,
  HTML, autolink, emphasis, code span, table pipe, heading or list can start in it. For the
  markdown artifacts, and for the table artifacts too: the Prefect UI renders their string cells as
  markdown.
"""

from __future__ import annotations

import re

from rich.text import Text

# What `printable` escapes: Cc (C0, DEL, C1), Zl and Zp, the bidi controls, lone surrogates.
_ACTED_ON = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                       "\ud800-\udfff]")
# CommonMark's escapable characters: all of ASCII punctuation.
_MARKDOWN_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def _escape(match: re.Match) -> str:
    return match.group(0).encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(value) -> str:
    """`value` as text a terminal or browser shows rather than acts on; None is ''."""
    return "" if value is None else _ACTED_ON.sub(_escape, str(value))


def terminal_text(value, style: str | None = None) -> Text:
    """`value` as a rich Text: printable, and never read as markup or emoji codes."""
    return Text(printable(value), style=style or "")


def markdown_text(value) -> str:
    """`value` as markdown that renders as exactly its printable text."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", printable(value))
