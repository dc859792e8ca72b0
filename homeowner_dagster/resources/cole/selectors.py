"""The Cole page model's selectors and paths, read from `selectors.toml` (the one place to edit).

Each key names an element and lists CSS selectors in order of preference; the page model uses
the first one present and remembers which, so preflight can say "found by fallback 2 of 3" and
an error can name the key that failed. `HOMEOWNER_COLE_SELECTORS` names a file whose keys
replace the packaged ones (a correction tried on a deployed image without a release).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SELECTORS_ENV = "HOMEOWNER_COLE_SELECTORS"
PACKAGED = Path(__file__).with_name("selectors.toml")
PAGES: tuple[str, ...] = ("login", "mfa", "search", "results", "export")
PATHS: tuple[str, ...] = ("login", "search", "logout")


class SelectorFileError(ValueError):
    """The selectors file is unreadable, or names a key or page the page model does not know."""


@dataclass(frozen=True)
class SelectorBook:
    """Keys -> ordered CSS selectors, grouped by the page that must hold them."""

    paths: dict[str, str]
    pages: dict[str, dict[str, tuple[str, ...]]]  # page -> key -> selectors, in file order
    signals: dict[str, tuple[str, ...]]  # looked for, absence normal
    source: str

    def candidates(self, key: str) -> tuple[str, ...]:
        for keys in self.pages.values():
            if key in keys:
                return keys[key]
        if key in self.signals:
            return self.signals[key]
        raise KeyError(f"no Cole selector key {key!r} in {self.source}")

    def keys(self, page: str) -> list[str]:
        """The keys a page must hold, in file order."""
        return list(self.pages[page])

    def page_of(self, key: str) -> str | None:
        return next((page for page, keys in self.pages.items() if key in keys), None)

    def any_of(self, *keys: str) -> str:
        """One CSS selector list matching any candidate of these keys (blanking secrets)."""
        return ", ".join(c for key in keys for c in self.candidates(key))


def _selectors(value: object, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(s, str) and s.strip() for s in items)
    ):
        raise SelectorFileError(f"{where}: give a CSS selector or a non-empty list of them")
    return tuple(s.strip() for s in items)


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SelectorFileError(f"{path}: {exc}") from None


def load(override: Path | None = None) -> SelectorBook:
    """The packaged selectors, with the keys of `override` (a TOML file of the same shape) in place."""
    base = _read(PACKAGED)
    paths = {k: str(v) for k, v in base["paths"].items()}
    pages = {
        page: {k: _selectors(v, f"pages.{page}.{k}") for k, v in base["pages"][page].items()}
        for page in PAGES
    }
    signals = {k: _selectors(v, f"signals.{k}") for k, v in base["signals"].items()}
    source = str(PACKAGED)
    if override is not None:
        extra = _read(override)
        source = f"{override} over {PACKAGED.name}"
        unknown = set(extra) - {"paths", "pages", "signals"}
        if unknown:
            raise SelectorFileError(f"{override}: unknown table(s) {sorted(unknown)}")
        for key, value in extra.get("paths", {}).items():
            if key not in paths:
                raise SelectorFileError(f"{override}: unknown path {key!r}; known: {list(PATHS)}")
            paths[key] = str(value)
        for page, keys in extra.get("pages", {}).items():
            if page not in pages:
                raise SelectorFileError(f"{override}: unknown page {page!r}; known: {list(PAGES)}")
            for key, value in keys.items():
                if key not in pages[page]:
                    raise SelectorFileError(f"{override}: pages.{page} has no key {key!r}")
                pages[page][key] = _selectors(value, f"{override}: pages.{page}.{key}")
        for key, value in extra.get("signals", {}).items():
            if key not in signals:
                raise SelectorFileError(f"{override}: unknown signal {key!r}")
            signals[key] = _selectors(value, f"{override}: signals.{key}")
    if "{state}" not in paths["login"]:
        raise SelectorFileError(f"{source}: paths.login must hold {{state}}")
    return SelectorBook(paths, pages, signals, source)


@lru_cache(maxsize=4)
def _cached(override: str | None) -> SelectorBook:
    return load(Path(override) if override else None)


def book() -> SelectorBook:
    """The selectors in force: the packaged file, with HOMEOWNER_COLE_SELECTORS's keys over it."""
    return _cached(os.environ.get(SELECTORS_ENV) or None)
