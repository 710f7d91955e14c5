"""Follows khabar's feed as a durable consumer: resumes after what it acknowledged last time.

    python3 consume.py --consumer search-indexer --from-beginning --until-caught-up
    python3 consume.py --consumer search-indexer --limit 100

Prints one line per event. Acknowledges its progress every --ack-every events, whenever the feed
pauses (a checkpoint) and before it stops, so the next run starts right after the last event it
printed. When the server goes away (UNAVAILABLE, e.g. a restart), it subscribes again and resumes
from the consumer's cursor on the server. Exit code 0 when done, 1 when the server refused, 2 when
it could not be reached.
"""

import argparse
import sys
import time

import grpc

from khabar_client import (
    REFUSED,
    TROUBLE,
    add_connection_arguments,
    channel,
    feed_pb2,
    feed_pb2_grpc,
    is_trouble,
    metadata,
    use_utf8_output,
)

CHECKPOINT = feed_pb2.EVENT_KIND_CHECKPOINT
# Unary calls get a deadline; the feed itself does not, since it is meant to stay open.
CALL_DEADLINE = 10.0


class Follower:
    """One durable consumer's progress: what was processed, and what the server has recorded."""

    def __init__(self, feed: feed_pb2_grpc.FeedServiceStub, args: argparse.Namespace):
        self.feed = feed
        self.args = args
        self.processed = 0
        self.acked = 0
        self.events = 0

    def ack(self, cursor: int) -> feed_pb2.Consumer:
        request = feed_pb2.AckRequest(consumer=self.args.consumer, cursor=cursor)
        consumer = self.feed.Ack(request, timeout=CALL_DEADLINE, metadata=metadata(self.args))
        self.acked = consumer.acked_cursor
        return consumer

    def ack_processed(self) -> None:
        if self.processed > self.acked:
            self.ack(self.processed)

    def follow(self) -> None:
        """Subscribes and handles events until the limit or, if asked, until caught up."""
        args = self.args
        request = feed_pb2.SubscribeRequest(
            consumer=args.consumer,
            filter=feed_pb2.FeedFilter(source_ids=args.source, languages=args.language),
        )
        # Only decides where a new consumer starts; an existing one resumes after its cursor.
        if args.from_beginning:
            request.from_beginning = True
        else:
            request.from_now = True
        feed = self.feed.Subscribe(request, metadata=metadata(args))
        try:
            for event in feed:
                if event.kind == CHECKPOINT:
                    # Everything up to the checkpoint was examined and what matched was
                    # printed: acknowledging it lets a filtered consumer move on too.
                    consumer = self.ack(max(event.cursor, self.processed))
                    if args.until_caught_up and consumer.acked_cursor >= consumer.head_cursor:
                        print(f"caught up at cursor {consumer.acked_cursor}")
                        return
                    continue
                self.print_event(event)
                self.processed = event.cursor
                self.events += 1
                if self.events % args.ack_every == 0:
                    self.ack_processed()
                if args.limit and self.events >= args.limit:
                    return
        finally:
            feed.cancel()

    @staticmethod
    def print_event(event: feed_pb2.FeedEvent) -> None:
        article = event.article
        kind = feed_pb2.EventKind.Name(event.kind).removeprefix("EVENT_KIND_")
        print(
            f"event cursor={event.cursor} kind={kind} id={article.id} "
            f"version={article.version} source={article.source.id} headline={article.headline}"
        )


def announce(feed: feed_pb2_grpc.FeedServiceStub, args: argparse.Namespace) -> None:
    try:
        request = feed_pb2.GetConsumerRequest(name=args.consumer)
        consumer = feed.GetConsumer(request, timeout=CALL_DEADLINE, metadata=metadata(args))
        print(
            f"resuming consumer {consumer.name} after cursor {consumer.acked_cursor} "
            f"(head {consumer.head_cursor})"
        )
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        print(f"new consumer {args.consumer}")


def run(follower: Follower, args: argparse.Namespace) -> None:
    """Follows the feed, subscribing again (with a growing pause) when the server goes away."""
    failures = 0
    while True:
        events_before = follower.events
        try:
            # Before (re)subscribing, record what was processed: the server resumes right after.
            follower.ack_processed()
            follower.follow()
            follower.ack_processed()
            return
        except grpc.RpcError as error:
            if follower.events > events_before:
                failures = 0
            if error.code() != grpc.StatusCode.UNAVAILABLE or failures >= args.reconnects:
                raise
            failures += 1
            pause = min(0.5 * 2 ** (failures - 1), 5.0)
            print(
                f"feed interrupted ({error.code().name}: {error.details()}); "
                f"subscribing again in {pause:.1f} s",
                file=sys.stderr,
            )
            time.sleep(pause)


def main() -> int:
    use_utf8_output()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    parser.add_argument("--consumer", required=True, help="durable consumer name")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="a new consumer starts at the beginning of the log (default: from now)",
    )
    parser.add_argument("--source", action="append", default=[], help="only this source id")
    parser.add_argument("--language", action="append", default=[], help="only this BCP-47 range")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many events")
    parser.add_argument(
        "--until-caught-up", action="store_true", help="stop once the end of the log is reached"
    )
    parser.add_argument("--ack-every", type=int, default=32, help="events between acks")
    parser.add_argument(
        "--reconnects", type=int, default=8, help="consecutive failed subscriptions before giving up"
    )
    args = parser.parse_args()
    if args.ack_every < 1:
        parser.error("--ack-every must be at least 1")

    with channel(args) as chan:
        feed = feed_pb2_grpc.FeedServiceStub(chan)
        follower = Follower(feed, args)
        try:
            announce(feed, args)
            run(follower, args)
        except grpc.RpcError as error:
            print(f"failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return TROUBLE if is_trouble(error) else REFUSED
        except KeyboardInterrupt:
            follower.ack_processed()
        print(f"acked cursor {follower.acked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
