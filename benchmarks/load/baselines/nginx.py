"""The nginx baseline: render its configuration and map, give its command.

The configuration is `nginx.conf.template` beside this module with its
`@NAME@` fields filled in; the map file holds one `/code "url";` line per
link. URLs go into the map verbatim, so one that nginx would read as
something else (a quote, a backslash, a `$` variable, a `;`) is refused
rather than escaped: the harness only shortens plain example URLs.

nginx matches a map's strings ignoring case, and refuses a map with two
keys that differ only in case ("conflicting parameter"). Codes are
case-sensitive base62, and 100,000 of them hold such a pair in about one
run in sixteen, so the map keeps the first of each; a request for the
other gets the kept code's URL, a redirect all the same.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["nginx_argv", "nginx_path", "render_config"]

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
_PLAIN = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!&'()*+,=%-]+")


def nginx_path() -> str | None:
    return shutil.which("nginx")


def _map_line(code: str, url: str) -> str:
    for value in (code, url):
        if not _PLAIN.fullmatch(value):
            raise ValueError(
                f"{value!r} cannot go into an nginx map verbatim; "
                "expected URL characters without quotes, $, ; or spaces"
            )
    return f'/{code} "{url}";\n'


def _hash_size(entries: int) -> int:
    size = 1024
    while size < 2 * entries:
        size *= 2
    return size


def render_config(prefix: Path, port: int, links: Mapping[str, str]) -> Path:
    """Write nginx.conf and map.conf under prefix; the nginx.conf path."""
    map_file = prefix / "map.conf"
    kept: dict[str, str] = {}
    for code, url in links.items():
        kept.setdefault(code.lower(), _map_line(code, url))
    map_file.write_text("".join(kept.values()))
    fields = {
        "PREFIX": str(prefix),
        "PORT": str(port),
        "MAP_FILE": str(map_file),
        "MAP_HASH_MAX_SIZE": str(_hash_size(len(links))),
    }
    text = TEMPLATE.read_text()
    for name, value in fields.items():
        text = text.replace(f"@{name}@", value)
    config = prefix / "nginx.conf"
    config.write_text(text)
    return config


def nginx_argv(nginx: str, prefix: Path, config: Path) -> list[str]:
    return [
        nginx,
        "-p",
        str(prefix),
        "-c",
        str(config),
        "-e",
        str(prefix / "error.log"),
    ]
