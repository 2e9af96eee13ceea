"""Small helpers for writing CIF values."""

from __future__ import annotations


def cif_value(value: object) -> str:
    """Quote a value for a CIF 1.1 file: bare, quoted, or a text field, whichever is valid."""
    if value is None:
        return "?"
    text = str(value).strip()
    if text == "":
        return "?"
    if "\n" in text:
        return "\n;\n" + text.replace("\n;", "\n ;") + "\n;"
    special = text[0] in "_#$'\"[];" or any(ch.isspace() for ch in text)
    lowered = text.lower()
    reserved = lowered.startswith(("data_", "loop_", "save_", "global_", "stop_"))
    if not special and not reserved:
        return text
    if "' " not in text and not text.endswith("'"):
        return f"'{text}'"
    if '" ' not in text and not text.endswith('"'):
        return f'"{text}"'
    return "\n;\n" + text + "\n;"
