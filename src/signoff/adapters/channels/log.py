"""The ``log`` channel: one structured log line per notification."""

from __future__ import annotations

import json
import logging

from signoff.services.ports import Notification

log = logging.getLogger("signoff.notify")


class LogChannel:
    name = "log"
    keeps_message_updated = False
    personal = False

    def send(self, notification: Notification) -> None:
        log.info(
            "notify %s",
            json.dumps(
                {"id": notification.id, **notification.payload},
                sort_keys=True,
                ensure_ascii=False,
            ),
        )
