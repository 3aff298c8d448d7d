"""The product's parts for a long-running process, rebuilt when the data behind them changes.

Every ingest of items or interactions writes a new version stamp, and every fit a new fit
file; the service asks `LiveParts.current()` for each request, which compares those three
with what its parts were built from (three small file reads) and rebuilds the data parts
(interactions, fit, retriever, explainer, ranker weights) over the same store and LLM
client when any differs. Item records need no rebuild: the store's in-memory image reloads
itself on the catalog's stamp (retrieval/memory_index.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recagent.fit import fitted_path
from recagent.wiring.parts import catalog_stamp, open_interactions
from recagent.wiring.product import Parts, assemble, data_parts, open_parts
from recagent.wiring.settings import Settings
from retrieval.stamp import VersionStamp

Version = tuple[str, str, str]
"""(catalog stamp, interactions stamp, fit file signature)."""


class LiveParts:
    """`current()`: the parts as of the latest ingest and fit."""

    def __init__(self, settings: Settings, parts: Parts, stamps: Stamps,
                 version: Version) -> None:
        """`version`: what `parts` were built from, read before they were built."""
        self.settings = settings
        self.stamps = stamps
        self._parts = parts
        self._version = version
        self._lock = threading.Lock()
        self.rebuilds = 0
        """Times the data parts were built again."""

    def version(self) -> Version:
        return self.stamps.read()

    def current(self) -> Parts:
        version = self.version()
        if version == self._version:
            return self._parts
        with self._lock:  # one rebuild at a time; the requests behind it then use it
            if version != self._version:
                old = self._parts
                data = data_parts(self.settings, old.store)
                self._parts = assemble(self.settings, old.store, data, old.client, old.prompts)
                self._version = version
                self.rebuilds += 1
        return self._parts


@dataclass(frozen=True)
class Stamps:
    """Where a collection's data says its version."""

    catalog: VersionStamp
    interactions: VersionStamp
    fit: Path

    @classmethod
    def of(cls, settings: Settings) -> Stamps:
        return cls(catalog_stamp(settings),
                   open_interactions(settings).stamp(settings.collection),
                   fitted_path(settings.home, settings.collection))

    def read(self) -> Version:
        try:
            st = self.fit.stat()
            signature = f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"
        except FileNotFoundError:
            signature = ""
        return self.catalog.read(), self.interactions.read(), signature


@contextmanager
def open_live_parts(settings: Settings) -> Iterator[LiveParts]:
    """`open_parts` for the duration, kept current (see the module's note)."""
    stamps = Stamps.of(settings)
    version = stamps.read()  # before the parts are built: a change meanwhile is seen
    with open_parts(settings) as parts:
        yield LiveParts(settings, parts, stamps, version)
