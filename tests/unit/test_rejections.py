"""What a process writes about rejected credentials: only 401/403 and the first success
after one (connections.rejections), decided without I/O."""

from __future__ import annotations

from datetime import datetime

from cardflow.connections.rejections import CallSite, Rejections


class Store:
    def __init__(self) -> None:
        self.writes: list[tuple[str, ...]] = []

    def record_rejection(
        self, connection_id: str, status_code: int, at: datetime, site: CallSite
    ) -> None:
        self.writes.append(("record", connection_id, str(status_code)))

    def clear_rejection(self, connection_id: str, before: datetime) -> bool:
        self.writes.append(("clear", connection_id))
        return True


def test_only_a_rejection_or_the_first_success_after_one_concerns_the_record() -> None:
    rejections = Rejections(Store())
    assert [rejections.concerns("con_a", code) for code in (200, 302, 404, 429, 500)] == [False] * 5
    assert rejections.concerns("con_a", 401) and rejections.concerns("con_a", 403)
    rejections.learned("con_a", True)  # another process recorded one
    assert rejections.concerns("con_a", 200) and rejections.concerns("con_a", 304)
    assert not rejections.concerns("con_a", 500) and not rejections.concerns("con_b", 200)


async def test_a_flood_of_the_same_rejection_is_written_once_a_success_once() -> None:
    store = Store()
    rejections = Rejections(store)
    for _ in range(100):
        await rejections.observe("con_a", 403, 5.0, CallSite())
    await rejections.observe("con_a", 401, 5.0, CallSite())  # news: written
    assert store.writes == [("record", "con_a", "403"), ("record", "con_a", "401")]
    for _ in range(100):
        if rejections.concerns("con_a", 200):
            await rejections.observe("con_a", 200, 5.0, CallSite())
    assert store.writes[2:] == [("clear", "con_a")]
    await rejections.observe("con_a", 403, 5.0, CallSite())  # after a success: written
    assert store.writes[3:] == [("record", "con_a", "403")]


async def test_a_failing_write_is_not_the_cards_failure() -> None:
    class Broken(Store):
        def record_rejection(self, *args: object) -> None:  # type: ignore[override]
            raise OSError("database gone")

    rejections = Rejections(Broken())
    await rejections.observe("con_a", 401, 5.0, CallSite())  # logged, not raised
    assert "con_a" in rejections.marked
