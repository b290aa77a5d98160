"""Write :mod:`starnode.config.sections` (the typed sections) from :data:`~.schema.SCHEMA`.

The schema stays the one place a key is declared (type, default, range, description, secret);
the frozen dataclasses mypy checks every read against are generated from it, and
``tests/config/test_config_typed.py`` fails when the file and the schema differ. After adding or
changing a key::

    python -m starnode.config.generate src/starnode/config/sections.py
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from .schema import SCHEMA, Field, _horizon, _str_list, _str_map

__all__ = ["annotation", "class_name", "sections_source"]

_HEADER = '''"""The typed sections of the configuration, generated from ``config/schema.py``.

Do not edit: run ``python -m starnode.config.generate src/starnode/config/sections.py`` after
changing the schema (``tests/config/test_config_typed.py`` fails while the two differ). Values are
validated (and defaults filled in) by :class:`starnode.config.Config`; these classes only give
each key its type, so mypy checks every read such as ``cfg.watch.poll_interval``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

__all__ = [
{names}
]


class Section(Mapping[str, Any]):
    """Base of every section: attributes (``cfg.camera.gain_e_per_adu``), and a read-only
    mapping too (``cfg["camera"]["gain_e_per_adu"]``), as the seed's plain dict was."""

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in fields(self))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(fields(self))  # type: ignore[arg-type]
'''

#: The element types of list and dict keys, by the check that validates them.
_CONTAINERS = {_str_list: "list[str]", _str_map: "dict[str, str]",
               _horizon: "list[list[float]]"}


def class_name(section: str) -> str:
    """``target_tool`` -> ``TargetToolSettings``."""
    return "".join(part.capitalize() for part in section.split("_")) + "Settings"


def annotation(section: str, key: str, field: Field) -> str:
    """The type of one key's validated value, as source text."""
    if (section, key) == ("", "data_dir"):
        return "Path"  # Config fills in the default folder
    types = field.type if isinstance(field.type, tuple) else (field.type,)
    if field.choices is not None:
        quoted = ", ".join('"' + str(c) + '"' for c in field.choices)
        text = f"Literal[{quoted}]"
    elif set(types) == {int, float} or types == (float,):
        text = "float"  # an int is widened on load
    elif types in ((bool,), (int,), (str,)):
        text = types[0].__name__
    elif types in ((list,), (dict,)):
        text = _CONTAINERS.get(field.check,  # type: ignore[arg-type]
                               f"{types[0].__name__}[{'str, ' if dict in types else ''}Any]")
    else:
        raise TypeError(f"{section}.{key}: no annotation for {field.type!r}")
    return f"{text} | None" if field.optional and (section, key) != ("", "data_dir") else text


def _comment(doc: str) -> list[str]:
    return ["    #: " + line for line in textwrap.wrap(doc, 92)]


def sections_source() -> str:
    """The text of ``config/sections.py`` for the current :data:`SCHEMA`."""
    names = ["Section", "TypedConfig"] + [class_name(s) for s in SCHEMA if s]
    lines = [_HEADER.replace("{names}", "\n".join(f'    "{n}",' for n in sorted(names)))
             .rstrip("\n")]
    for section, keys in SCHEMA.items():
        if not section:
            continue
        lines += ["", "", "@dataclass(frozen=True)", f"class {class_name(section)}(Section):",
                  f'    """``{section}:`` (see :data:`starnode.config.SCHEMA`)."""', ""]
        for key, field in keys.items():
            lines += _comment(field.doc)
            lines.append(f"    {key}: {annotation(section, key, field)}")
    lines += ["", "", "class TypedConfig:",
              '    """The typed face of :class:`starnode.config.Config`: the top-level keys and '
              'one', '    attribute per section."""', ""]
    for key, field in SCHEMA[""].items():
        lines += _comment(field.doc)
        lines.append(f"    {key}: {annotation('', key, field)}")
    for section in SCHEMA:
        if section:
            lines.append(f"    {section}: {class_name(section)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Write the file named in ``argv`` (stdout without one)."""
    text = sections_source()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
