"""The usage stream as ``services.ports.UsageIntake``: a pull consumer shared by every
worker (each fetch takes messages no other worker holds), explicit acknowledgements
sent after the commit, and rejects kept in the rejected stream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats.errors
import orjson
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from creditledger.adapters.streams.connection import NatsLoop
from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.intake import Delivery, IntakeNames, Rejected

PUBLISH_TIMEOUT_SECONDS = 10.0
REJECT_CODE_HEADER = "Creditledger-Reject-Code"
REJECT_MESSAGE_HEADER = "Creditledger-Reject-Message"
SUBJECT_HEADER = "Creditledger-Subject"
SEQUENCE_HEADER = "Creditledger-Stream-Sequence"
MSG_ID_HEADER = "Nats-Msg-Id"


class JetStreamIntake:
    """Bound to the durable consumer that ``creditledger streams setup`` made."""

    def __init__(self, url: str, names: IntakeNames, client_name: str = "creditledger consume"):
        self.names = names
        self.conn = NatsLoop(url, client_name)
        try:
            self.js: JetStreamContext = self.conn.nc.jetstream()
            self.sub = self.conn.run(self._bind(), PUBLISH_TIMEOUT_SECONDS)
        except BaseException:
            self.conn.close()
            raise

    async def _bind(self) -> JetStreamContext.PullSubscription:
        try:
            await self.js.consumer_info(self.names.stream, self.names.consumer)
        except nats.js.errors.NotFoundError:
            raise ServiceUnavailable(
                f"No stream {self.names.stream} with a consumer {self.names.consumer} on "
                f"NATS at {self.conn.url}: run `creditledger streams setup` first."
            ) from None
        return await self.js.pull_subscribe_bind(
            durable=self.names.consumer, stream=self.names.stream
        )

    def fetch(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        return self.conn.run(self._fetch(max_messages, wait_seconds), wait_seconds)

    async def _fetch(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        try:
            messages = await self.sub.fetch(max_messages, timeout=wait_seconds)
        except TimeoutError:  # nats-py's and asyncio's: nothing came in time
            return []
        return [_delivery(m) for m in messages]

    def reject(self, rejected: Sequence[Rejected]) -> None:
        if rejected:
            self.conn.run(self._reject(rejected), PUBLISH_TIMEOUT_SECONDS)

    async def _reject(self, rejected: Sequence[Rejected]) -> None:
        # The rejected stream drops a repeat within its window: a batch that comes again
        # after its rejects were kept does not keep them twice.
        acks = [
            await self.js.publish_async(
                self.names.rejected,
                r.delivery.data,
                headers={
                    MSG_ID_HEADER: f"{self.names.stream}:{r.delivery.stream_seq}",
                    REJECT_CODE_HEADER: r.code,
                    REJECT_MESSAGE_HEADER: r.message,
                    SUBJECT_HEADER: r.delivery.subject,
                    SEQUENCE_HEADER: str(r.delivery.stream_seq),
                },
            )
            for r in rejected
        ]
        await asyncio.wait_for(asyncio.gather(*acks), PUBLISH_TIMEOUT_SECONDS)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.conn.run(self._reply(deliveries, b"+ACK"), PUBLISH_TIMEOUT_SECONDS)

    def retry_later(self, deliveries: Sequence[Delivery], delay_seconds: float) -> None:
        nak = b"-NAK " + orjson.dumps({"delay": int(delay_seconds * 1e9)})
        self.conn.run(self._reply(deliveries, nak), PUBLISH_TIMEOUT_SECONDS)

    async def _reply(self, deliveries: Sequence[Delivery], body: bytes) -> None:
        for delivery in deliveries:
            await self.conn.nc.publish(delivery.reply, body)
        # One round trip: the server has them all when it answers.
        await self.conn.nc.flush(timeout=int(PUBLISH_TIMEOUT_SECONDS))

    def close(self) -> None:
        self.conn.close()


def _delivery(msg: Msg) -> Delivery:
    meta = msg.metadata
    return Delivery(
        subject=msg.subject,
        data=msg.data,
        msg_id=(msg.headers or {}).get(MSG_ID_HEADER),
        reply=msg.reply,
        stream_seq=meta.sequence.stream,
        delivered=meta.num_delivered,
        pending=meta.num_pending,
    )
