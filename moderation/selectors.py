"""Reads of moderation state that the rooms app needs (the only moderation import it has)."""

from moderation.models import Block


def blocked_user_ids(user_id: int | None) -> set[int]:
    if user_id is None:
        return set()
    return set(Block.objects.filter(blocker_id=user_id).values_list("blocked_id", flat=True))
