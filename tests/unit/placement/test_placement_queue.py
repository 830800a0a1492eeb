"""Queue order: tier band, class priority, pod priority, age, uid."""

from __future__ import annotations

from placement_builders import make_pod

from ballast.placement.objects import ClassPolicy
from ballast.placement.queue import PendingQueue

CLASSES = {
    "chat": ClassPolicy("chat", "Interactive", 0),
    "rag": ClassPolicy("rag", "Interactive", 10),
    "enrich": ClassPolicy("enrich", "Nearline", 1000),
    "batch": ClassPolicy("batch", "Offline", 5000),
}


def test_order_by_tier_then_priority_then_age() -> None:
    q = PendingQueue(CLASSES)
    pods = [
        make_pod("batch-old").cls("batch").created(0).obj,
        make_pod("enrich").cls("enrich").created(5).obj,
        make_pod("chat-new").cls("chat").created(9).obj,
        make_pod("chat-old").cls("chat").created(1).obj,
        make_pod("chat-urgent").cls("chat").priority(5).created(20).obj,
        make_pod("rag").cls("rag").created(30).obj,
        make_pod("unknown-class").cls("nope").created(-5).obj,
    ]
    for p in pods:
        q.push(p)
    # batch's class priority (5000) outranks the default class (0) inside the Offline band.
    want = ["rag", "chat-urgent", "chat-old", "chat-new", "enrich", "batch-old", "unknown-class"]
    assert [p.name for p in q] == want
    assert len(q) == 7 and "team-a/rag" in q


def test_remove_pop_and_requeue() -> None:
    q = PendingQueue(CLASSES)
    a = make_pod("a").cls("chat").created(1).obj
    b = make_pod("b").cls("batch").created(0).obj
    q.push(b)
    q.push(a)
    assert q.pop() == a
    assert q.remove("missing") is None
    q.push(b)  # re-adding replaces
    assert len(q) == 1 and q.remove(b.id) == b and q.pop() is None
