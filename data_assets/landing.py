"""Handing landing objects over to the ledger: shared by the landing sensor and manual runs."""

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime

from data_assets.layout import LANDING_PREFIX
from data_assets.readings import EARLIEST
from resources.ledger import LedgerStore
from resources.object_store import ObjectInfo, ObjectStore

_DATE_IN_KEY = re.compile(r"(?<!\d)(20\d\d)-?([01]\d)-?([0-3]\d)(?!\d)")


def home_day(info: ObjectInfo, today: date | None = None) -> str:
    """The day a landing object is first curated for: the last date named in its key (devices
    name files by the day they cover), else the UTC day it was uploaded. Rows for other days are
    discovered when it is parsed and scheduled for those days."""
    # Not after today: a day's partition exists from that day on.
    latest = today or datetime.now(UTC).date()
    for match in reversed(list(_DATE_IN_KEY.finditer(info.key))):
        try:
            named = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue
        if EARLIEST.date() <= named <= latest:
            return named.isoformat()
    uploaded = info.last_modified.astimezone(UTC).date()
    return max(min(uploaded, latest), EARLIEST.date()).isoformat()


def is_landing_object(info: ObjectInfo) -> bool:
    # Folder markers and hidden files (editors' swap files, partial uploads) are not uploads.
    name = info.key.rsplit("/", 1)[-1]
    return not info.key.endswith("/") and not name.startswith(".")


LIST_PAGE = 1000  # objects compared with the ledger at once; S3 lists 1,000 keys a request


def pages(items: Iterable[ObjectInfo], size: int = LIST_PAGE) -> Iterator[list[ObjectInfo]]:
    page: list[ObjectInfo] = []
    for item in items:
        page.append(item)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def register_new(ledger: LedgerStore, infos: list[ObjectInfo], today: date | None = None) -> int:
    """Records the object versions the ledger does not hold yet; returns how many were new."""
    infos = [i for i in infos if is_landing_object(i)]
    return ledger.register(infos, [home_day(i, today) for i in infos])


def sync_landing(store: ObjectStore, ledger: LedgerStore, today: date | None = None) -> int:
    """A full pass over `landing/`, page by page, registering every unknown object version."""
    new = 0
    for page in pages(store.list(LANDING_PREFIX)):
        new += register_new(ledger, page, today)
    return new
